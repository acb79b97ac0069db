package cases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// EUNAVAILABLE: the case store could not be reached. Stores return it for
// connection failures; the request may succeed later.
const EUNAVAILABLE = "unavailable"

// OutcomeOutbox keeps the outcomes that could not be written because the
// case store was unreachable, in a local folder, one file per outcome,
// until they are written. A file is complete before it is visible: it is
// written under a temporary name, synced, renamed and its folder synced,
// so a crash leaves either the whole entry or none. Entries that can
// never be written (the session ended otherwise meanwhile) move to the
// failed/ subfolder and are logged; nothing is deleted unwritten.
type OutcomeOutbox struct {
	dir string
	mu  sync.Mutex // serialises renames and removals against listing
}

// outboxEntry is the content of one outbox file.
type outboxEntry struct {
	ID       string     `json:"id"`
	Kind     string     `json:"kind"` // session.end
	QueuedAt time.Time  `json:"queuedAt"`
	Request  EndRequest `json:"request"`
}

const (
	outboxKindEnd = "session.end"
	outboxTmp     = ".tmp-"
	outboxFailed  = "failed"
)

// OpenOutcomeOutbox opens (creating it if needed) the outbox in dir, and
// removes the partial files of writes a crash interrupted.
func OpenOutcomeOutbox(dir string) (*OutcomeOutbox, error) {
	if err := os.MkdirAll(filepath.Join(dir, outboxFailed), 0o700); err != nil {
		return nil, fmt.Errorf("outcome outbox: %w", err)
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("outcome outbox: %w", err)
	}
	for _, n := range names {
		if strings.HasPrefix(n.Name(), outboxTmp) {
			_ = os.Remove(filepath.Join(dir, n.Name()))
		}
	}
	return &OutcomeOutbox{dir: dir}, nil
}

// Dir is the outbox's folder.
func (b *OutcomeOutbox) Dir() string { return b.dir }

// Put keeps req durably and returns its entry id. When Put returns nil
// the entry survives a crash.
func (b *OutcomeOutbox) Put(req EndRequest) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	now := time.Now().UTC()
	id := fmt.Sprintf("%020d-%s", now.UnixNano(), hex.EncodeToString(rnd[:]))
	doc, err := json.Marshal(outboxEntry{ID: id, Kind: outboxKindEnd, QueuedAt: now, Request: req})
	if err != nil {
		return "", fmt.Errorf("outcome outbox: encode: %w", err)
	}
	f, err := os.CreateTemp(b.dir, outboxTmp+"*")
	if err != nil {
		return "", fmt.Errorf("outcome outbox: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(doc, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		b.mu.Lock()
		err = os.Rename(tmp, filepath.Join(b.dir, id+".json"))
		b.mu.Unlock()
	}
	if err == nil {
		err = syncDir(b.dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("outcome outbox: write %s: %w", id, err)
	}
	return id, nil
}

// Pending lists the ids of the entries not written yet, oldest first.
func (b *OutcomeOutbox) Pending() ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pendingLocked()
}

func (b *OutcomeOutbox) pendingLocked() ([]string, error) {
	names, err := os.ReadDir(b.dir)
	if err != nil {
		return nil, fmt.Errorf("outcome outbox: %w", err)
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n.Name(), ".json"); ok && n.Type().IsRegular() && !strings.HasPrefix(id, ".") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Failed lists the ids of the entries that could not be written.
func (b *OutcomeOutbox) Failed() ([]string, error) {
	names, err := os.ReadDir(filepath.Join(b.dir, outboxFailed))
	if err != nil {
		return nil, fmt.Errorf("outcome outbox: %w", err)
	}
	var ids []string
	for _, n := range names {
		if id, ok := strings.CutSuffix(n.Name(), ".json"); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func (b *OutcomeOutbox) read(id string) (*outboxEntry, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, id+".json"))
	if err != nil {
		return nil, err
	}
	var e outboxEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if e.Kind != outboxKindEnd {
		return nil, fmt.Errorf("unknown kind %q", e.Kind)
	}
	return &e, nil
}

// done removes a written entry.
func (b *OutcomeOutbox) done(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := os.Remove(filepath.Join(b.dir, id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(b.dir)
}

// fail moves an entry that can never be written aside.
func (b *OutcomeOutbox) fail(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := os.Rename(filepath.Join(b.dir, id+".json"), filepath.Join(b.dir, outboxFailed, id+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return errors.Join(syncDir(b.dir), syncDir(filepath.Join(b.dir, outboxFailed)))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// ReplayStats counts what one replay did.
type ReplayStats struct {
	Written int // recorded now, or found recorded already (a retry)
	Failed  int // moved to failed/: they can never be written
	Left    int // still pending: the store is unreachable or busy
}

// Replay writes the pending entries, oldest first, through svc. It stops
// at the first entry the store cannot take now and returns that error;
// the entries left are tried again by the next Replay. Writing is
// idempotent, so an entry written before a crash removed it is not
// recorded twice.
func (b *OutcomeOutbox) Replay(ctx context.Context, svc *Service, log *slog.Logger) (ReplayStats, error) {
	var st ReplayStats
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ids, err := b.Pending()
	if err != nil {
		return st, err
	}
	for i, id := range ids {
		e, err := b.read(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // written by a concurrent replay
		}
		if err != nil {
			log.Error("outcome outbox: unreadable entry moved to failed/", "entry", id, "err", err)
			if ferr := b.fail(id); ferr != nil {
				return st, ferr
			}
			st.Failed++
			continue
		}
		_, err = svc.RecordOutcome(ctx, e.Request)
		switch code := ErrorCode(err); code {
		case "":
			if err := b.done(id); err != nil {
				return st, fmt.Errorf("outcome outbox: remove %s: %w", id, err)
			}
			st.Written++
			log.Info("outcome outbox: outcome written", "entry", id, "session", e.Request.SessionID)
		case EINVALID, ENOTFOUND, ETRANSITION:
			log.Error("outcome outbox: outcome cannot be written; moved to failed/", "entry", id,
				"session", e.Request.SessionID, "code", code, "err", err)
			if ferr := b.fail(id); ferr != nil {
				return st, ferr
			}
			st.Failed++
		default: // unavailable, busy or unknown: try again later
			st.Left = len(ids) - i
			return st, err
		}
	}
	return st, nil
}

// OutboxReplayerParams configures an OutboxReplayer.
type OutboxReplayerParams struct {
	Outbox  *OutcomeOutbox
	Service *Service
	Logger  *slog.Logger
	// Interval is the time between two replays; 0 means 5 seconds.
	Interval time.Duration
}

// OutboxReplayer replays the outcome outbox regularly, until Close.
type OutboxReplayer struct {
	p       OutboxReplayerParams
	log     *slog.Logger
	closed  chan struct{}
	done    chan struct{}
	started sync.Once
	stopped sync.Once
	mu      sync.Mutex
	running bool
}

// NewOutboxReplayer returns a replayer; Start runs it.
func NewOutboxReplayer(p OutboxReplayerParams) *OutboxReplayer {
	if p.Interval <= 0 {
		p.Interval = 5 * time.Second
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return &OutboxReplayer{p: p, log: p.Logger.With("component", "outcome-outbox"),
		closed: make(chan struct{}), done: make(chan struct{})}
}

// Start replays now and then every Interval until Close.
func (r *OutboxReplayer) Start() {
	r.started.Do(func() {
		r.mu.Lock()
		r.running = true
		r.mu.Unlock()
		go r.run()
	})
}

func (r *OutboxReplayer) run() {
	defer close(r.done)
	t := time.NewTicker(r.p.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		go func() {
			select {
			case <-r.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		st, err := r.p.Outbox.Replay(ctx, r.p.Service, r.log)
		if err != nil && st.Left > 0 {
			r.log.Warn("outcome outbox: store still unreachable", "pending", st.Left, "err", err)
		} else if err != nil {
			r.log.Error("outcome outbox: replay failed", "err", err)
		}
		cancel()
		select {
		case <-r.closed:
			return
		case <-t.C:
		}
	}
}

// Close stops the replayer and waits for it. It is idempotent, and safe
// for a replayer never started.
func (r *OutboxReplayer) Close() error {
	r.started.Do(func() {})
	r.stopped.Do(func() { close(r.closed) })
	r.mu.Lock()
	running := r.running
	r.mu.Unlock()
	if running {
		<-r.done
	}
	return nil
}
