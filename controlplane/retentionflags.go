package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/pilothouse/pilothouse/controlplane/store"
)

// retentionFlags are the embedded store's retention settings.
type retentionFlags struct {
	age  time.Duration
	size string
}

func (r *retentionFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&r.age, "retention-age", store.DefaultMaxAge, "keep spans and logs this long (0 keeps them until --retention-size removes them)")
	fs.StringVar(&r.size, "retention-size", "1GiB", "keep the store under this size, oldest data removed first: bytes, or with KB, MB, GB, KiB, MiB, GiB (0: no size limit)")
}

// storeOptions returns the store options the flags set; a zero age or
// size turns that limit off (the store takes a negative value for off).
func (r *retentionFlags) storeOptions() (store.Options, error) {
	var o store.Options
	if r.age < 0 {
		return o, fmt.Errorf("--retention-age %s: must not be negative", r.age)
	}
	o.MaxAge = r.age
	if o.MaxAge == 0 {
		o.MaxAge = -1
	}
	n, err := parseBytes(r.size)
	if err != nil {
		return o, fmt.Errorf("--retention-size %q: %w", r.size, err)
	}
	o.MaxBytes = n
	if n == 0 {
		o.MaxBytes = -1
	}
	if o.MaxAge < 0 && o.MaxBytes < 0 {
		return o, errors.New("--retention-age 0 and --retention-size 0 together would keep everything until the disk is full; keep one of them")
	}
	return o, nil
}

// byteUnits are the size suffixes parseBytes takes, longest first.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// minRetentionSize keeps a typo ("1MiB" for "1GiB" is fine, "1" is not)
// from deleting everything the store receives.
const minRetentionSize = 1 << 20

// parseBytes reads a size such as 500MB, 2GiB or 1073741824; 0 is
// allowed, anything else must be at least 1 MiB.
func parseBytes(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, errors.New("not a size like 500MB or 2GiB")
	}
	if v*float64(mult) > float64(math.MaxInt64/2) {
		return 0, errors.New("too large")
	}
	n := int64(v * float64(mult))
	if n != 0 && n < minRetentionSize {
		return 0, fmt.Errorf("%d bytes is less than 1 MiB", n)
	}
	return n, nil
}
