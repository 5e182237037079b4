package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/internal/api"
)

// Issue 10 item 3: a text just under 64 KiB was answered 500 "frame too
// large" (and then 400 "request body too large", without a limit). A
// text over what a message carries is refused before any work with 413
// and the limit in bytes; the longest one is sent.
func TestSendTextOverTheLimitIs413WithTheLimit(t *testing.T) {
	n, _ := startNode(t, testConfig(t))
	peer, _ := crypto.NewIdentity(nil)
	if err := n.Inject("test", peer.Address(), announceFrame(t, peer)); err != nil {
		t.Fatal(err)
	}
	waitRoute(t, n, peer.Address())
	c := &api.Client{Addr: n.APIAddr()}
	ctx := context.Background()
	limit := fmt.Sprintf("at most %d bytes", MaxTextSize)
	for _, size := range []int{MaxTextSize + 1, 65500, 64<<10 - 1, 64 << 10, 200 << 10} {
		var apiErr *api.Error
		err := c.Post(ctx, "/v1/send", api.SendRequest{To: peer.Address().String(), Text: strings.Repeat("x", size)}, &api.SendResponse{})
		if !errors.As(err, &apiErr) || apiErr.Status != 413 || apiErr.Code != "too_large" || !strings.Contains(apiErr.Message, limit) {
			t.Errorf("text of %d bytes: %v, want 413 too_large %q", size, err, limit)
		}
	}
	// In a batch, that message is refused and the others go.
	var res api.SendBatchResponse
	err := c.Post(ctx, "/v1/send", api.SendRequest{Messages: []api.SendRequest{
		{To: peer.Address().String(), Text: strings.Repeat("x", MaxTextSize+1)},
		{To: peer.Address().String(), Text: "small"},
	}}, &res)
	if err != nil || len(res.Results) != 2 || res.Results[0].Error == nil || res.Results[0].Error.Code != "too_large" ||
		!strings.Contains(res.Results[0].Error.Message, limit) || res.Results[1].Error != nil {
		t.Fatalf("batch: %v %+v", err, res.Results)
	}
	var ok api.SendResponse
	if err := c.Post(ctx, "/v1/send", api.SendRequest{To: peer.Address().String(), Text: strings.Repeat("x", MaxTextSize)}, &ok); err != nil || ok.ID == "" {
		t.Fatalf("the longest text: %v %+v", err, ok)
	}
}
