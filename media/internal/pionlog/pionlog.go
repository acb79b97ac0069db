// Package pionlog sends pion's logs to a *slog.Logger. pion is chatty
// about conditions a client causes, so each of its levels maps one step
// down: its errors are warnings here, its warnings information, its
// information debug; its debug and trace are dropped.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory makes pion loggers that write to Logger.
type Factory struct {
	Logger *slog.Logger
}

var _ logging.LoggerFactory = Factory{}

// NewLogger returns the logger of one pion scope.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	l := f.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return leveled{l.With("pion", scope)}
}

type leveled struct{ l *slog.Logger }

func (x leveled) log(level slog.Level, msg string) {
	x.l.Log(context.Background(), level, msg)
}

func (x leveled) logf(level slog.Level, format string, args ...any) {
	if x.l.Enabled(context.Background(), level) {
		x.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (leveled) Trace(string)                       {}
func (leveled) Tracef(string, ...any)              {}
func (leveled) Debug(string)                       {}
func (leveled) Debugf(string, ...any)              {}
func (x leveled) Info(msg string)                  { x.log(slog.LevelDebug, msg) }
func (x leveled) Infof(format string, args ...any) { x.logf(slog.LevelDebug, format, args...) }
func (x leveled) Warn(msg string)                  { x.log(slog.LevelDebug, msg) }
func (x leveled) Warnf(format string, args ...any) { x.logf(slog.LevelDebug, format, args...) }
func (x leveled) Error(msg string)                 { x.log(slog.LevelWarn, msg) }
func (x leveled) Errorf(format string, args ...any) {
	x.logf(slog.LevelWarn, format, args...)
}
