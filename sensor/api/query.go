package api

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/ringfence/ringfence/sensor/event"
	"github.com/ringfence/ringfence/sensor/store"
)

// EncodeQuery turns a query into URL parameters.
func EncodeQuery(q store.Query) url.Values {
	v := url.Values{}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	for k, s := range map[string]string{"container": q.Container, "pod": q.Pod, "namespace": q.PodNamespace, "image": q.Image} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for _, k := range q.Kinds {
		v.Add("kind", string(k))
	}
	for _, x := range q.Verdicts {
		v.Add("verdict", string(x))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// DecodeQuery parses URL parameters into a query, naming the bad parameter.
func DecodeQuery(v url.Values) (store.Query, error) {
	q := store.Query{Container: v.Get("container"), Pod: v.Get("pod"), PodNamespace: v.Get("namespace"), Image: v.Get("image")}
	var err error
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			if *dst, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return q, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	for _, k := range v["kind"] {
		q.Kinds = append(q.Kinds, event.Kind(k))
	}
	for _, x := range v["verdict"] {
		q.Verdicts = append(q.Verdicts, event.Verdict(x))
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, fmt.Errorf("limit: %q is not a non-negative integer", s)
		}
	}
	return q, nil
}
