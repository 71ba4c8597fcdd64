package forward

import (
	"testing"
	"time"
)

func TestDeliveryWithDefaults(t *testing.T) {
	got := Delivery{}.WithDefaults()
	if got.QueueBatches != DefaultQueueBatches || got.Timeout != DefaultTimeout || got.Retries != DefaultRetries ||
		got.RetryBackoff != DefaultRetryBackoff || got.Client == nil || got.Logger == nil {
		t.Errorf("zero Delivery: got %+v, want every default", got)
	}
	set := Delivery{QueueBatches: 3, Timeout: time.Second, Retries: -1, RetryBackoff: time.Millisecond}.WithDefaults()
	if set.QueueBatches != 3 || set.Timeout != time.Second || set.Retries != -1 || set.RetryBackoff != time.Millisecond {
		t.Errorf("set Delivery: got %+v, want the values kept (Retries -1 = none)", set)
	}
}
