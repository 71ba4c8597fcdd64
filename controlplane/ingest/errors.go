package ingest

import "errors"

// Sentinel errors. Decode and handler errors wrap one of them, so callers
// match with errors.Is.
var (
	// ErrUnsupportedMediaType is returned for a Content-Type other than
	// application/x-protobuf or application/json.
	ErrUnsupportedMediaType = errors.New("ingest: unsupported content type")
	// ErrUnsupportedEncoding is returned for a Content-Encoding other than
	// gzip or identity.
	ErrUnsupportedEncoding = errors.New("ingest: unsupported content encoding")
	// ErrTooLarge is returned when a body exceeds MaxBodyBytes, or its
	// decompressed form exceeds MaxDecompressedBytes.
	ErrTooLarge = errors.New("ingest: request body too large")
	// ErrMalformed is returned when a body cannot be decoded.
	ErrMalformed = errors.New("ingest: malformed request")
	// ErrUnauthorized is returned by an Authenticate function that refuses
	// a request.
	ErrUnauthorized = errors.New("ingest: unauthorized")
	// ErrForbidden is returned (wrapped) by a SpanWriter or LogWriter that
	// refuses items the authenticated sender may not send, such as an
	// agent token limited to other services: 403, not retried.
	ErrForbidden = errors.New("ingest: forbidden")
)
