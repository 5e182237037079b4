package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file is the harness's side of a node's admin API. It has its own
// small JSON types rather than importing internal/api, so the harness
// states the contract it tests instead of inheriting whatever the server
// happens to do.

// apiError is a non-2xx answer: the status, the coded error body if there
// was one, and Retry-After (429) in seconds.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// statusOf is the HTTP status of err if it is an *apiError, else 0.
func statusOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

type client struct {
	base string // http://host:port
	hc   *http.Client
}

func newClient(addr string, conns int) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every sender keeps its connection: without this, 8 clients share 2
	// idle connections and open thousands of short ones (TIME_WAIT).
	tr.MaxIdleConnsPerHost = conns
	tr.MaxIdleConns = conns
	return &client{base: "http://" + addr, hc: &http.Client{Transport: tr}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// do makes one request with its own timeout and decodes a 2xx JSON answer
// into out (if not nil).
func (c *client) do(ctx context.Context, timeout time.Duration, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode, Message: strings.TrimSpace(string(data))}
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		if v := resp.Header.Get("Retry-After"); v != "" {
			if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
				ae.RetryAfter = time.Duration(s * float64(time.Second))
			}
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding %q: %w", method, path, truncate(string(data), 200), err)
	}
	return nil
}

func (c *client) ready(ctx context.Context) bool {
	return c.do(ctx, 2*time.Second, http.MethodGet, "/readyz", nil, nil) == nil
}

type statusBody struct {
	Address string `json:"address"`
	Ready   bool   `json:"ready"`
}

func (c *client) status(ctx context.Context) (statusBody, error) {
	var st statusBody
	err := c.do(ctx, 5*time.Second, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

type sendResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"` // queued, forwarded or stored
}

func (c *client) send(ctx context.Context, to, text string) (sendResponse, error) {
	var res sendResponse
	err := c.do(ctx, 30*time.Second, http.MethodPost, "/v1/send", map[string]string{"to": to, "text": text}, &res)
	if err == nil && len(res.ID) != 32 {
		err = fmt.Errorf("POST /v1/send: answer without a 32-hex id: %+v", res)
	}
	return res, err
}

type batchResult struct {
	ID     string    `json:"id"`
	Status string    `json:"status"`
	Error  *apiError `json:"error"`
}

// sendBatch posts texts in the batch form of POST /v1/send; the answer
// has one result per text.
func (c *client) sendBatch(ctx context.Context, to string, texts []string) ([]batchResult, error) {
	msgs := make([]map[string]string, len(texts))
	for i, t := range texts {
		msgs[i] = map[string]string{"to": to, "text": t}
	}
	var res struct {
		Results []batchResult `json:"results"`
	}
	err := c.do(ctx, 30*time.Second, http.MethodPost, "/v1/send", map[string]any{"messages": msgs}, &res)
	if err == nil && len(res.Results) != len(texts) {
		err = fmt.Errorf("POST /v1/send: %d results for %d texts", len(res.Results), len(texts))
	}
	return res.Results, err
}

type messageState struct {
	ID       string `json:"id"`
	To       string `json:"to"`
	State    string `json:"state"` // queued, sent, delivered or failed
	Attempts int    `json:"attempts"`
	Reason   string `json:"reason"`
}

func (c *client) message(ctx context.Context, id string) (messageState, error) {
	var m messageState
	err := c.do(ctx, 10*time.Second, http.MethodGet, "/v1/messages/"+id, nil, &m)
	return m, err
}

type inboxEntry struct {
	Seq  uint64    `json:"seq"`
	ID   string    `json:"id"`
	From string    `json:"from"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
	Hops int       `json:"hops"`
}

type inboxPage struct {
	Messages []inboxEntry `json:"messages"`
	Last     uint64       `json:"last"`
}

// inbox fetches one page after seq; wait > 0 asks the node to hold the
// request until something arrives (a long poll; a node that does not know
// the parameter answers at once, which is fine too).
func (c *client) inbox(ctx context.Context, after uint64, wait time.Duration) (inboxPage, error) {
	var p inboxPage
	path := "/v1/inbox?after=" + strconv.FormatUint(after, 10)
	if wait > 0 {
		path += "&wait=" + wait.String()
	}
	err := c.do(ctx, wait+10*time.Second, http.MethodGet, path, nil, &p)
	return p, err
}

// inboxAll reads the whole inbox, page after page.
func (c *client) inboxAll(ctx context.Context) ([]inboxEntry, error) {
	var all []inboxEntry
	var after uint64
	for {
		p, err := c.inbox(ctx, after, 0)
		if err != nil {
			return all, err
		}
		if len(p.Messages) == 0 {
			return all, nil
		}
		all = append(all, p.Messages...)
		if p.Last <= after { // a server that does not move on: do not loop forever
			return all, fmt.Errorf("GET /v1/inbox?after=%d answered last=%d with %d messages", after, p.Last, len(p.Messages))
		}
		after = p.Last
	}
}

// routesTo reports whether the node has a route to addr.
func (c *client) routesTo(ctx context.Context, addr string) (bool, error) {
	var rs struct {
		Routes []struct {
			Address string `json:"address"`
		} `json:"routes"`
	}
	if err := c.do(ctx, 5*time.Second, http.MethodGet, "/v1/routes", nil, &rs); err != nil {
		return false, err
	}
	for _, r := range rs.Routes {
		if r.Address == addr {
			return true, nil
		}
	}
	return false, nil
}

// metrics fetches /metrics (Prometheus text).
func (c *client) metrics(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
