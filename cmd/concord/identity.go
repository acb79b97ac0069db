package main

import (
	"fmt"

	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
	"github.com/concord-odr/concord/cases/notify"
	"github.com/concord-odr/concord/signaling"
	"github.com/concord-odr/concord/web/ratelimit"
)

// Signaling verifies join tokens with identity's verifier.
var _ signaling.TokenVerifier = (*identity.Verifier)(nil)

// startIdentity loads the signing keys of the data folder (the current
// one signs, the older ones still verify), and starts staff accounts and
// join links, the notification outbox and the rate limiter: in Redis when
// Redis is configured, in process otherwise.
func (m *Main) startIdentity() error {
	cur, older, err := joinlink.LoadKeyring(m.Config.DataDir, "joinlink", splitList(m.Config.LinkKeys)...)
	if err != nil {
		return fmt.Errorf("join link keys: %w", err)
	}
	if m.signer, err = joinlink.NewSigner(cur, older, nil); err != nil {
		return err
	}
	staffCur, staffOlder, err := joinlink.LoadKeyring(m.Config.DataDir, "staff")
	if err != nil {
		return fmt.Errorf("staff token keys: %w", err)
	}
	if len(older) > 0 || len(staffOlder) > 0 {
		m.log.Info("older signing keys still verify", "joinlink", len(older), "staff", len(staffOlder))
	}

	var sender notify.Notifier = notify.Log{Logger: m.log}
	if m.Config.NotifyWebhookURL != "" {
		sender = &notify.Webhook{URL: m.Config.NotifyWebhookURL, Secret: m.Config.NotifyWebhookSecret}
		m.log.Info("notifications: webhook")
	} else {
		m.log.Info("notifications: printed to the log (no --notify-webhook-url)")
	}
	m.outbox = notify.NewOutbox(notify.OutboxParams{Store: m.store, Sender: sender, Logger: m.log})

	m.identity, err = identity.New(identity.Params{
		Store: m.store, Logger: m.log, Links: m.signer,
		StaffKey: staffCur, StaffOlderKeys: staffOlder,
		BaseURL: m.BaseURL, LinkTTL: m.Config.LinkTTL,
		Queued: m.outbox.Kick,
	})
	if err != nil {
		return err
	}

	if m.redis != nil {
		m.limiter = ratelimit.NewRedis(ratelimit.RedisParams{Client: m.redis, Prefix: "concord:rl:", Logger: m.log})
	} else {
		m.limiter = ratelimit.NewMemory(nil)
	}
	return nil
}
