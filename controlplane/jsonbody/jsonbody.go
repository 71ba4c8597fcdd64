// Package jsonbody reads request bodies for the control plane's JSON and
// form endpoints the same way everywhere: within a size cap, strictly
// (unknown fields and trailing data refused), and with failures that say
// which HTTP status to answer and, where one field is at fault, which.
//
//	var req CreateRequest
//	if err := jsonbody.Decode(w, r, 64<<10, &req); err != nil {
//		e := jsonbody.AsError(err)
//		writeJSON(w, e.Status, e) // {"error": "...", "field": "..."}
//		return
//	}
package jsonbody

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Sentinel causes an *Error wraps.
var (
	// ErrTooLarge: the body exceeds the cap (413).
	ErrTooLarge = errors.New("jsonbody: body too large")
	// ErrMalformed: the body is not what the endpoint reads (400).
	ErrMalformed = errors.New("jsonbody: malformed body")
	// ErrTimeout: the body did not arrive within the read deadline (408).
	ErrTimeout = errors.New("jsonbody: body read timed out")
)

// Error is a body the endpoint refuses. It marshals as the control
// plane's JSON error: {"error": "...", "field": "..."}.
type Error struct {
	// Status is the HTTP status to answer: 413, 408 or 400.
	Status int `json:"-"`
	// Field is the JSON path of the field at fault ("rules.0.rate"), or
	// "" when the body as a whole is at fault.
	Field   string `json:"field,omitempty"`
	Message string `json:"error"`
	cause   error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns ErrTooLarge, ErrTimeout or ErrMalformed.
func (e *Error) Unwrap() error { return e.cause }

// Decode reads one JSON document from r's body into dst, refusing bodies
// over maxBytes, unknown fields, wrong types and trailing data. Its error
// is always an *Error.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return classify(err, maxBytes)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return classify(err, maxBytes)
		}
		return &Error{Status: http.StatusBadRequest, Message: "jsonbody: unexpected data after the JSON document", cause: ErrMalformed}
	}
	return nil
}

// ParseForm parses r's form within maxBytes. Its error is always an
// *Error: 413 over the cap, else 400.
func ParseForm(w http.ResponseWriter, r *http.Request, maxBytes int64) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(maxBytes)
		}
		return &Error{Status: http.StatusBadRequest, Message: "jsonbody: malformed form: " + err.Error(), cause: ErrMalformed}
	}
	return nil
}

// AsError returns err as an *Error; any other error becomes a 400
// without a field.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: http.StatusBadRequest, Message: err.Error(), cause: ErrMalformed}
}

// FieldOf names the field a JSON decoding error is about: the path of a
// wrong-typed value or the name of an unknown field; "" when it is about
// no one field.
func FieldOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if _, f, ok := strings.Cut(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

func tooLarge(maxBytes int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("jsonbody: body too large: the limit is %d bytes", maxBytes), cause: ErrTooLarge}
}

func classify(err error, maxBytes int64) *Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(maxBytes)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &Error{Status: http.StatusRequestTimeout, Message: "jsonbody: timed out reading the request body", cause: ErrTimeout}
	}
	field := FieldOf(err)
	msg := strings.TrimPrefix(err.Error(), "json: ")
	switch {
	case field != "":
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("%s: must be %s, got %s", field, te.Type, te.Value)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		msg = "body is not valid JSON: it ends early"
	default:
		msg = "body is not valid JSON: " + msg
	}
	return &Error{Status: http.StatusBadRequest, Field: field, Message: "jsonbody: " + msg, cause: ErrMalformed}
}
