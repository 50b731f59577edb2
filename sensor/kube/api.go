package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The agent speaks to the API server with a client of its own: JSON over
// HTTPS, a list and a watch per resource and the creation of Events. A
// general client would link the types and machinery of every API group
// into the one binary, and their package initialisation runs at every
// start of every ringfence command, `ringfence events` included (it was
// 40% of that command's CPU time).

// Resource is an API resource: where its objects are served.
type Resource struct {
	Group, Version, Plural string
}

// APIVersion is the resource's objects' apiVersion.
func (r Resource) APIVersion() string {
	if r.Group == "" {
		return r.Version
	}
	return r.Group + "/" + r.Version
}

// path is the URL path of the resource's objects in namespace ns (every
// namespace, or a cluster-scoped resource, when ""), or of one of them.
func (r Resource) path(ns, name string) string {
	p := "/apis/" + r.Group + "/" + r.Version
	if r.Group == "" {
		p = "/api/" + r.Version
	}
	if ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	p += "/" + r.Plural
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

var (
	podResource       = Resource{Version: "v1", Plural: "pods"}
	eventResource     = Resource{Version: "v1", Plural: "events"}
	daemonSetResource = Resource{Group: "apps", Version: "v1", Plural: "daemonsets"}
)

// Object is what the agent reads of an API object.
type Object struct {
	APIVersion string          `json:"apiVersion,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Metadata   Meta            `json:"metadata"`
	Spec       json.RawMessage `json:"spec,omitempty"`
}

// Meta is an object's metadata, the part the agent reads.
type Meta struct {
	Name              string            `json:"name,omitempty"`
	Namespace         string            `json:"namespace,omitempty"`
	UID               string            `json:"uid,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	DeletionTimestamp *string           `json:"deletionTimestamp,omitempty"`
	OwnerReferences   []OwnerReference  `json:"ownerReferences,omitempty"`
}

// OwnerReference is one of an object's owners.
type OwnerReference struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Controller *bool  `json:"controller,omitempty"`
}

// key is how a store names an object: namespace/name, or name.
func (o *Object) key() string {
	if o.Metadata.Namespace == "" {
		return o.Metadata.Name
	}
	return o.Metadata.Namespace + "/" + o.Metadata.Name
}

// controller is the owner reference that manages the object, if any.
func (o *Object) controller() *OwnerReference {
	for i := range o.Metadata.OwnerReferences {
		if r := &o.Metadata.OwnerReferences[i]; r.Controller != nil && *r.Controller {
			return r
		}
	}
	return nil
}

// list is a list response.
type list struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []*Object `json:"items"`
}

// status is the API server's Status object: what it says of a refusal.
type status struct {
	Kind    string `json:"kind"`
	Code    int    `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// APIError is a request the API server answered with an error status.
type APIError struct {
	Method, Path string
	Code         int    // HTTP status (410: the resource version is too old)
	Reason       string // the Status's reason (NotFound, Forbidden, Expired...)
	Message      string
	// RetryAfter is how long the server asked to wait (429, 503), or 0.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Code, e.Reason, msg)
}

// retryAfter is how long the server asked err's request to wait, or 0.
func retryAfter(err error) time.Duration {
	var e *APIError
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// isStatus reports whether err is the API server's answer with this code.
func isStatus(err error, code int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// client makes the agent's requests.
type client struct {
	server    string // scheme://host:port, no path
	http      *http.Client
	token     func() (string, error) // a bearer token, when the configuration has one
	userAgent string
}

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// request sends one request and returns the response when its status is
// a success; anything else is an error naming the request.
func (c *client) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(data)
	}
	u := c.server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != nil {
		tok, err := c.token()
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Method: method, Path: path, Code: resp.StatusCode}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	var st status
	if json.Unmarshal(data, &st) == nil && st.Kind == "Status" {
		e.Reason, e.Message = st.Reason, st.Message
	} else {
		e.Message = strings.TrimSpace(string(data))
	}
	return nil, e
}

// do sends one request with a body (may be nil) and decodes the response
// into out (may be nil).
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: the answer: %w", method, path, err)
		}
	}
	// Read to its end, so that the connection is used again.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return err
}

// requestTimeout bounds a request that is not a watch.
const requestTimeout = 10 * time.Second

// get reads one object.
func (c *client) get(ctx context.Context, r Resource, ns, name string) (*Object, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var o Object
	if err := c.do(ctx, http.MethodGet, r.path(ns, name), nil, nil, &o); err != nil {
		return nil, err
	}
	return &o, nil
}
