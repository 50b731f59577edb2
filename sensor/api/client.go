package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/ringfence/ringfence/sensor/posture"
	"io"
	"net"
	"net/http"

	"github.com/ringfence/ringfence/sensor/status"
	"github.com/ringfence/ringfence/sensor/store"
)

// Client talks to a daemon's socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}}
}

func (c *Client) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ringfence"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("daemon: %s: %s", resp.Status, msg)
	}
	return resp, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Status asks for the daemon's status.
func (c *Client) Status(ctx context.Context) (*status.Snapshot, error) {
	var s status.Snapshot
	return &s, c.getJSON(ctx, "/v1/status", &s)
}

// Cgroups lists the watched cgroup ids.
func (c *Client) Cgroups(ctx context.Context) ([]uint64, error) {
	var ids []uint64
	return ids, c.getJSON(ctx, "/v1/cgroups", &ids)
}

// Containers lists the containers the daemon knows.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	var out []Container
	return out, c.getJSON(ctx, "/v1/containers", &out)
}

// Posture returns the CIS findings of each running container.
func (c *Client) Posture(ctx context.Context) ([]posture.Report, error) {
	var out []posture.Report
	return out, c.getJSON(ctx, "/v1/posture", &out)
}

// Query runs a stored-event query in the daemon.
func (c *Client) Query(ctx context.Context, q store.Query) (*QueryResult, error) {
	var r QueryResult
	return &r, c.getJSON(ctx, "/v1/events?"+EncodeQuery(q).Encode(), &r)
}

// Stream calls fn with each live event's JSON until ctx ends or the daemon goes.
func (c *Client) Stream(ctx context.Context, q store.Query, fn func([]byte) error) error {
	resp, err := c.get(ctx, "/v1/events/stream?"+EncodeQuery(q).Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}
