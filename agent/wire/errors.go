package wire

import (
	"errors"
	"strings"
)

// FieldError names the field at fault in a document and why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"error"`
}

func (e FieldError) Error() string { return "wire: " + e.Field + ": " + e.Message }

// FieldErrors is every field error found in one document.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Field + ": " + e.Message
	}
	return "wire: invalid: " + strings.Join(parts, "; ")
}

// errOrNil returns nil for an empty list so callers can return it directly.
func (es FieldErrors) errOrNil() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// AsFieldErrors extracts field errors from err, if it carries any.
func AsFieldErrors(err error) (FieldErrors, bool) {
	var es FieldErrors
	if errors.As(err, &es) {
		return es, true
	}
	var e FieldError
	if errors.As(err, &e) {
		return FieldErrors{e}, true
	}
	return nil, false
}

// ErrTooLarge is returned when a document exceeds its size limit.
var ErrTooLarge = errors.New("wire: document too large")

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }
