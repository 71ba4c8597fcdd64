package ingest

import (
	"encoding/hex"
	"fmt"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

// Attribute keys read from resources, spans and log records.
const (
	attrServiceName    = "service.name"
	attrServiceVersion = "service.version"
	attrInstanceID     = "service.instance.id"
	attrRequestID      = "request_id"
	attrRequestIDHdr   = "http.request.header.x-request-id"
	attrRoute          = "http.route"
	attrStatusCode     = "http.response.status_code"
	attrStatusCodeOld  = "http.status_code"
)

// UnknownService names spans and logs whose resource has no service.name,
// as the OpenTelemetry resource semantic conventions prescribe.
const UnknownService = "unknown_service"

// resourceInfo is what every span or log record of one resource shares.
type resourceInfo struct {
	service  string
	instance string
	version  string
}

func newResourceInfo(r *resourcepb.Resource) resourceInfo {
	attrs := r.GetAttributes()
	info := resourceInfo{service: UnknownService}
	if s, ok := findString(attrs, attrServiceName); ok && s != "" {
		info.service = truncate(s, MaxNameBytes)
	}
	if s, ok := findString(attrs, attrInstanceID); ok {
		info.instance = truncate(s, MaxNameBytes)
	}
	if s, ok := findString(attrs, attrServiceVersion); ok {
		info.version = truncate(s, MaxNameBytes)
	}
	return info
}

// requestID reads the Pilothouse request ID attribute, or the captured
// X-Request-ID header of the HTTP semantic conventions.
func requestID(attrs []*commonpb.KeyValue) string {
	if s, ok := findString(attrs, attrRequestID); ok && s != "" {
		return truncate(s, MaxNameBytes)
	}
	if s, ok := findString(attrs, attrRequestIDHdr); ok {
		return truncate(s, MaxNameBytes)
	}
	return ""
}

// hexID renders a binary ID as lowercase hex, or reports why it is
// invalid. An ID is valid when it has exactly size bytes, not all zero;
// optional IDs may also be empty.
func hexID(field string, id []byte, size int, optional bool) (string, error) {
	if len(id) == 0 && optional {
		return "", nil
	}
	if len(id) != size {
		if optional {
			return "", fmt.Errorf("%s must be empty or %d bytes (%d hex digits)", field, size, 2*size)
		}
		return "", fmt.Errorf("%s must be %d bytes (%d hex digits)", field, size, 2*size)
	}
	zero := true
	for _, b := range id {
		if b != 0 {
			zero = false
			break
		}
	}
	if zero {
		return "", fmt.Errorf("%s must not be all zeros", field)
	}
	return hex.EncodeToString(id), nil
}

// Rejected counts the items of one request that were refused, with a
// message naming the first few reasons. The zero value means every item
// was accepted.
type Rejected struct {
	Count   int64
	Message string
}

// maxRejectReasons is how many reasons the message spells out.
const maxRejectReasons = 3

// rejections accumulates Rejected while decoding.
type rejections struct {
	count   int64
	reasons []string
}

// add records one rejected item; where is called only for the first few
// so the common path formats nothing.
func (r *rejections) add(where func() string, err error) {
	r.count++
	if len(r.reasons) < maxRejectReasons {
		r.reasons = append(r.reasons, where()+": "+err.Error())
	}
}

func (r *rejections) result(item string) Rejected {
	if r.count == 0 {
		return Rejected{}
	}
	msg := fmt.Sprintf("%d %s rejected: %s", r.count, item, strings.Join(r.reasons, "; "))
	if more := r.count - int64(len(r.reasons)); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return Rejected{Count: r.count, Message: msg}
}
