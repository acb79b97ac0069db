package main

import (
	"errors"
	"log/slog"

	"github.com/concord-odr/concord/cases"
)

// cloudMediation runs the 24-hour service's background parts: the ODR
// worker (complaints to the merchants' inboxes, overdue ones to
// mediation), the reminder worker (a day and 15 minutes before each
// scheduled session) and the instant-mediation queue's timer.
type cloudMediation struct {
	odr, reminders *cases.Worker
	queue          *cases.Queue
}

func startCloudMediation(svc *cases.Service, log *slog.Logger) *cloudMediation {
	return &cloudMediation{
		odr:       cases.NewODRWorker(cases.ODRWorkerParams{Service: svc, Logger: log.With("part", "odr")}),
		reminders: cases.NewReminderWorker(cases.ReminderWorkerParams{Service: svc, Logger: log.With("part", "reminders")}),
		queue:     cases.NewQueue(cases.QueueParams{Service: svc, Logger: log.With("part", "queue")}, true),
	}
}

// Close stops the three; it is idempotent.
func (c *cloudMediation) Close() error {
	return errors.Join(c.odr.Close(), c.reminders.Close(), c.queue.Close())
}
