package dashboard

import (
	"context"
	"fmt"
	"time"
)

// WriteHealth is the part of *store.Store that tells whether writes fail.
type WriteHealth interface {
	WriteFailure() (since time.Time, err error)
}

// StoreAlerts returns the overview's alerts (ui.WithAlerts) for st: one
// message while the store fails writes, saying since when and why, so an
// operator learns why agents get 503 from ingest.
func StoreAlerts(st WriteHealth) func(ctx context.Context) []string {
	return func(context.Context) []string {
		since, err := st.WriteFailure()
		if err == nil {
			return nil
		}
		return []string{fmt.Sprintf("The store is failing writes since %s: %v. Ingest answers 503 and agents retry; spans and logs sent meanwhile may be dropped by the agents' bounded queues.",
			since.UTC().Format("2006-01-02 15:04:05 UTC"), err)}
	}
}
