// Package notify delivers short messages (SMS, WeChat) to parties: a
// Notifier interface, a sender that prints to the log (the default) and
// one that posts to the operator's gateway (Webhook), and an Outbox whose
// worker delivers what the case store queued, retrying with backoff so
// that a gateway outage loses no message.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
)

// Message is one notification.
type Message struct {
	// ID identifies the message; a gateway sees it as the Idempotency-Key
	// and should deliver each ID once.
	ID      string
	To      string // a phone number for sms, an openid for wechat
	Channel string // cases.NotifySMS or cases.NotifyWeChat
	Text    string
}

// Notifier sends a message.
type Notifier interface {
	Send(ctx context.Context, m Message) error
}

// ErrPermanent marks a failure that retrying cannot cure (the gateway
// refused the message itself). Wrap it to stop the retries.
var ErrPermanent = errors.New("notify: permanent failure")

// RetryAfterError asks for the next attempt no sooner than After.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// Check validates a message's channel and recipient.
func (m Message) Check() error {
	if m.Channel != cases.NotifySMS && m.Channel != cases.NotifyWeChat {
		return fmt.Errorf("notify: unknown channel %q", m.Channel)
	}
	if strings.TrimSpace(m.To) == "" || strings.TrimSpace(m.Text) == "" {
		return errors.New("notify: a message needs a recipient and a text")
	}
	return nil
}

// Mask hides all but the last four characters of a recipient, for logs
// and for the record kept after delivery.
func Mask(to string) string {
	r := []rune(to)
	if len(r) <= 4 {
		return strings.Repeat("*", len(r))
	}
	return strings.Repeat("*", len(r)-4) + string(r[len(r)-4:])
}

// Log is the default Notifier: it prints each message to the log, so that
// a server with no gateway still shows the links it would have sent.
type Log struct {
	Logger *slog.Logger
}

var _ Notifier = Log{}

// Send logs m.
func (l Log) Send(_ context.Context, m Message) error {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Info("notification (no gateway configured: printed, not sent)",
		"id", m.ID, "channel", m.Channel, "to", Mask(m.To), "text", m.Text)
	return nil
}
