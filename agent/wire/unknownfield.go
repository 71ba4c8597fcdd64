package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// unknownFieldPath finds the first object key in data, in document order,
// that names no field of t, and returns its path ("degradations[0].enabeld").
// encoding/json reports only the bare key; this walks the document again
// beside t's fields, matching keys as encoding/json does (exact, else
// case-insensitive). ok is false when no unknown key is found.
func unknownFieldPath(data []byte, t reflect.Type) (path string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	path, ok, _ = walkUnknown(dec, t, "")
	return path, ok
}

// walkUnknown reads one value from dec; t is the Go type it decodes into,
// nil when any value is accepted there.
func walkUnknown(dec *json.Decoder, t reflect.Type, path string) (string, bool, error) {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return "", false, err
	}
	switch tok {
	case json.Delim('{'):
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", false, err
			}
			key, _ := kt.(string)
			sub := joinPath(path, key)
			var ft reflect.Type
			switch {
			case t == nil:
			case t.Kind() == reflect.Struct:
				var known bool
				if ft, known = jsonField(t, key); !known {
					return sub, true, nil
				}
			case t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			if p, found, err := walkUnknown(dec, ft, sub); found || err != nil {
				return p, found, err
			}
		}
		_, err = dec.Token() // '}'
	case json.Delim('['):
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if p, found, err := walkUnknown(dec, et, path+"["+strconv.Itoa(i)+"]"); found || err != nil {
				return p, found, err
			}
		}
		_, err = dec.Token() // ']'
	}
	return "", false, err
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonField returns the type of t's field that key decodes into,
// following embedded structs as encoding/json does.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	var folded reflect.Type
	var found bool
	var visit func(t reflect.Type) bool
	visit = func(t reflect.Type) bool {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if visit(et) {
						return true
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if name == key {
				folded, found = ft, true
				return true
			}
			if !found && strings.EqualFold(name, key) {
				folded, found = ft, true
			}
		}
		return false
	}
	visit(t)
	return folded, found
}
