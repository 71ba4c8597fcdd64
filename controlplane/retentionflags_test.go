package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

func TestRetentionFlags(t *testing.T) {
	tests := []struct {
		args      []string
		wantAge   time.Duration
		wantBytes int64
		wantErr   string
	}{
		{args: nil, wantAge: store.DefaultMaxAge, wantBytes: 1 << 30},
		{args: []string{"--retention-age", "24h", "--retention-size", "500MB"}, wantAge: 24 * time.Hour, wantBytes: 500e6},
		{args: []string{"--retention-size", "2GiB"}, wantAge: store.DefaultMaxAge, wantBytes: 2 << 30},
		{args: []string{"--retention-size", "1.5 gib"}, wantAge: store.DefaultMaxAge, wantBytes: 3 << 29},
		{args: []string{"--retention-size", "1073741824"}, wantAge: store.DefaultMaxAge, wantBytes: 1 << 30},
		{args: []string{"--retention-age", "0"}, wantAge: -1, wantBytes: 1 << 30},
		{args: []string{"--retention-size", "0"}, wantAge: store.DefaultMaxAge, wantBytes: -1},
		{args: []string{"--retention-age", "0", "--retention-size", "0"}, wantErr: "keep one of them"},
		{args: []string{"--retention-age", "-1h"}, wantErr: "--retention-age -1h0m0s: must not be negative"},
		{args: []string{"--retention-size", "lots"}, wantErr: `--retention-size "lots": not a size`},
		{args: []string{"--retention-size", "-5MB"}, wantErr: "not a size"},
		{args: []string{"--retention-size", "100KB"}, wantErr: "less than 1 MiB"},
		{args: []string{"--retention-size", "1e30GB"}, wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var r retentionFlags
			r.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			o, err := r.storeOptions()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || o.MaxAge != tt.wantAge || o.MaxBytes != tt.wantBytes {
				t.Errorf("got age %v bytes %d (%v), want %v and %d", o.MaxAge, o.MaxBytes, err, tt.wantAge, tt.wantBytes)
			}
		})
	}
}
