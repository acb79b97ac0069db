package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Webhook headers.
const (
	// IdempotencyHeader carries the message id: a gateway that sees the
	// same id twice (a retry after a lost answer) must send it once.
	IdempotencyHeader = "Idempotency-Key"
	// TimestampHeader carries the Unix time the request was signed at.
	TimestampHeader = "X-Concord-Timestamp"
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed
	// with the shared secret, of the timestamp, a dot and the body.
	SignatureHeader = "X-Concord-Signature"
)

// WebhookBody is the JSON a Webhook posts.
type WebhookBody struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	To      string `json:"to"`
	Text    string `json:"text"`
}

// Webhook posts each message to the operator's SMS/WeChat gateway. A 2xx
// answer is delivery; 408, 429 and 5xx answers and network errors are
// worth a retry (Retry-After is honoured); any other answer is a
// permanent failure.
type Webhook struct {
	URL string
	// Secret, when set, signs each request (SignatureHeader).
	Secret string
	// Client defaults to one with a 10 s timeout that follows no
	// redirects.
	Client *http.Client
	Now    func() time.Time
}

var _ Notifier = (*Webhook)(nil)

// Sign returns the signature header value of a body sent at ts.
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send posts m.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	if err := m.Check(); err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	body, err := json.Marshal(WebhookBody{ID: m.ID, Channel: m.Channel, To: m.To, Text: m.Text})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: webhook request: %w", ErrPermanent, err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "concord-notify/1")
	if m.ID != "" {
		req.Header.Set(IdempotencyHeader, m.ID)
	}
	req.Header.Set(TimestampHeader, ts)
	if w.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(w.Secret, ts, body))
	}
	client := w.Client
	if client == nil {
		client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL may carry a credential: report the cause without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		err := fmt.Errorf("webhook: gateway answered %d", resp.StatusCode)
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return &RetryAfterError{After: time.Duration(min(s, 3600)) * time.Second, Err: err}
		}
		return err
	default:
		return fmt.Errorf("%w: webhook: gateway answered %d", ErrPermanent, resp.StatusCode)
	}
}
