package main

import (
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/concord-odr/concord/cases"
)

// durability runs what keeps outcomes and the audit trail safe in the
// background: the replayer of the outcome outbox, and the regular export
// of the event log's chain heads to the log.
type durability struct {
	replayer *cases.OutboxReplayer
	heads    *cases.HeadExporter
}

// outboxDir is where the outcome outbox lives in the data folder.
func outboxDir(dataDir string) string { return filepath.Join(dataDir, "outbox", "outcomes") }

// openOutcomeOutbox opens the outcome outbox of the data folder: outcomes
// the store could not take wait there, on this node's disk.
func openOutcomeOutbox(dataDir string) (*cases.OutcomeOutbox, error) {
	return cases.OpenOutcomeOutbox(outboxDir(dataDir))
}

// startDurability starts the outbox replayer (every 5 s) and the chain
// head export (every headEvery; 0 means 10 minutes).
func startDurability(svc *cases.Service, box *cases.OutcomeOutbox, log *slog.Logger, headEvery time.Duration) *durability {
	d := &durability{
		replayer: cases.NewOutboxReplayer(cases.OutboxReplayerParams{Outbox: box, Service: svc, Logger: log}),
		heads:    cases.NewHeadExporter(cases.HeadExporterParams{Service: svc, Logger: log, Interval: headEvery}),
	}
	d.replayer.Start()
	d.heads.Start()
	return d
}

// Close stops both; it is idempotent.
func (d *durability) Close() error {
	return errors.Join(d.replayer.Close(), d.heads.Close())
}
