package api

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
)

func TestQueryRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		q    store.Query
	}{
		{"empty", store.Query{}},
		{"every field", store.Query{
			Since: t0, Until: t0.Add(90*time.Minute + 123456789), Container: "web", Pod: "web-7d4", PodNamespace: "prod",
			Image: "registry.internal/web/*", Kinds: []event.Kind{event.KindExec, event.KindFile},
			Verdicts: []event.Verdict{event.VerdictDeny, event.VerdictAudit}, Limit: 25,
		}},
		{"characters that need escaping", store.Query{Container: "a&b=c d", Image: "reg/x?y#z"}},
		{"a time with an offset", store.Query{Since: time.Date(2026, 11, 28, 12, 2, 0, 5, time.FixedZone("", 2*3600))}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Through the URL text, as the client sends it.
			v, err := url.ParseQuery(EncodeQuery(c.q).Encode())
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeQuery(v)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Since.Equal(c.q.Since) || !got.Until.Equal(c.q.Until) {
				t.Fatalf("window %v..%v, want %v..%v", got.Since, got.Until, c.q.Since, c.q.Until)
			}
			got.Since, got.Until = c.q.Since, c.q.Until
			if !reflect.DeepEqual(got, c.q) {
				t.Fatalf("got %+v, want %+v", got, c.q)
			}
		})
	}
}

func TestDecodeQueryNamesTheBadParameter(t *testing.T) {
	cases := []struct {
		raw, want string
	}{
		{"since=yesterday", "since:"},
		{"until=2026-13-01T00:00:00Z", "until:"},
		{"limit=-1", `limit: "-1" is not a non-negative integer`},
		{"limit=ten", `limit: "ten"`},
	}
	for _, c := range cases {
		v, _ := url.ParseQuery(c.raw)
		if _, err := DecodeQuery(v); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error starting %q", c.raw, err, c.want)
		}
	}
}
