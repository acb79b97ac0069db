package cases

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// The case event log is hash-chained. Each event holds the hash of the
// event before it in the same case (PrevHash, "" for the first) and its
// own Hash:
//
//	Hash = hex(SHA-256(["concord.event.v1", caseId, seq, type, actor, atMicros, payload, prevHash]))
//
// where the array is encoded as canonical JSON (see CanonicalJSON),
// atMicros is the event's time in microseconds since the Unix epoch (the
// precision the stores keep) and payload is the canonical form of the
// event's payload, or null when it has none. Canonical JSON makes the hash
// independent of how a store prints a stored payload (PostgreSQL's jsonb
// reorders keys and respaces). Stores compute the hash in AppendEvent;
// VerifyChain recomputes it. Editing, inserting or deleting an event
// breaks the chain at that event; rewriting a whole chain changes its
// head, which the exported heads (HeadExporter, GET /api/v1/audit/heads)
// let an auditor detect.

// eventHashVersion names the encoding hashed; a new encoding needs a new
// name.
const eventHashVersion = "concord.event.v1"

// EventHash returns the hash of e chained to prevHash.
func EventHash(e *Event, prevHash string) (string, error) {
	var payload []byte = []byte("null")
	if len(e.Payload) > 0 {
		var err error
		if payload, err = CanonicalJSON(e.Payload); err != nil {
			return "", err
		}
	}
	var b bytes.Buffer
	b.WriteByte('[')
	writeCanonicalString(&b, eventHashVersion)
	b.WriteByte(',')
	writeCanonicalString(&b, e.CaseID)
	fmt.Fprintf(&b, ",%d,", e.Seq)
	writeCanonicalString(&b, e.Type)
	b.WriteByte(',')
	writeCanonicalString(&b, e.Actor)
	fmt.Fprintf(&b, ",%d,", e.At.UnixMicro())
	b.Write(payload)
	b.WriteByte(',')
	writeCanonicalString(&b, prevHash)
	b.WriteByte(']')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// SealEvent sets e's PrevHash and Hash, chaining it to prevHash. Stores
// call it in AppendEvent once Seq and At are final.
func SealEvent(e *Event, prevHash string) error {
	h, err := EventHash(e, prevHash)
	if err != nil {
		return Errorf(EINVALID, "event payload cannot be canonicalised: %v", err)
	}
	e.PrevHash, e.Hash = prevHash, h
	return nil
}

// ChainEvents seals the events of one case's log, given in order, from
// the first one whose hash is missing, and returns the indexes of the
// events it sealed. Stores use it to chain rows written before the log
// was hash-chained.
func ChainEvents(events []Event) ([]int, error) {
	var sealed []int
	prev := ""
	for i := range events {
		e := &events[i]
		if e.Hash == "" || len(sealed) > 0 {
			if err := SealEvent(e, prev); err != nil {
				return nil, fmt.Errorf("chain event %s/%d: %w", e.CaseID, e.Seq, err)
			}
			sealed = append(sealed, i)
		}
		prev = e.Hash
	}
	return sealed, nil
}

// ChainBreak is the first place where a case's log does not verify.
type ChainBreak struct {
	Seq    int64  `json:"seq"`    // the event at fault (or expected there)
	Reason string `json:"reason"` // what is wrong, in words
	Stored string `json:"stored,omitempty"`
	Want   string `json:"want,omitempty"`
}

// ChainReport is the result of verifying one case's log.
type ChainReport struct {
	CaseID string      `json:"caseId"`
	Events int         `json:"events"`
	Head   *ChainHead  `json:"head,omitempty"`
	OK     bool        `json:"ok"`
	Break  *ChainBreak `json:"break,omitempty"`
}

// VerifyChain recomputes the hash chain of one case's events, given in
// order, and reports the first broken link.
func VerifyChain(caseID string, events []Event) *ChainReport {
	r := &ChainReport{CaseID: caseID, Events: len(events), OK: true}
	prev := ""
	for i, e := range events {
		fail := func(reason, stored, want string) *ChainReport {
			r.OK = false
			r.Break = &ChainBreak{Seq: e.Seq, Reason: reason, Stored: stored, Want: want}
			return r
		}
		if want := int64(i + 1); e.Seq != want {
			r.OK = false
			r.Break = &ChainBreak{Seq: want, Reason: fmt.Sprintf("event %d is missing (found seq %d in its place)", want, e.Seq)}
			return r
		}
		if e.Hash == "" {
			return fail("the event has no hash", "", "")
		}
		if e.PrevHash != prev {
			return fail("prev_hash does not match the hash of the event before", e.PrevHash, prev)
		}
		h, err := EventHash(&e, e.PrevHash)
		if err != nil {
			return fail("the payload is not valid JSON: "+err.Error(), e.Hash, "")
		}
		if h != e.Hash {
			return fail("the event's content does not match its hash", e.Hash, h)
		}
		prev = e.Hash
	}
	if n := len(events); n > 0 {
		last := events[n-1]
		r.Head = &ChainHead{CaseID: caseID, Seq: last.Seq, Hash: last.Hash, At: last.At}
	}
	return r
}

// VerifyCase reads a case's log and verifies its hash chain. A case with
// no events is ENOTFOUND.
func (s *Service) VerifyCase(ctx context.Context, caseID string) (*ChainReport, error) {
	var events []Event
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		events, err = tx.Events(ctx, caseID)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return nil, Errorf(ENOTFOUND, "case not found")
	}
	return VerifyChain(caseID, events), nil
}

// ChainHead is the last event of one case's log.
type ChainHead struct {
	CaseID string    `json:"caseId"`
	Seq    int64     `json:"seq"`
	Hash   string    `json:"hash"`
	At     time.Time `json:"at"`
}

// ChainHeads is every case's chain head at one moment, with a digest
// over all of them.
type ChainHeads struct {
	At     time.Time   `json:"at"`
	Count  int         `json:"count"`
	Digest string      `json:"digest"`
	Items  []ChainHead `json:"items"`
}

// HeadsDigest is the SHA-256 over the heads in case id order, each as
// "caseId seq hash\n": one value that changes when any chain does.
func HeadsDigest(heads []ChainHead) string {
	sorted := slices.Clone(heads)
	slices.SortFunc(sorted, func(a, b ChainHead) int { return strings.Compare(a.CaseID, b.CaseID) })
	h := sha256.New()
	for _, x := range sorted {
		fmt.Fprintf(h, "%s %d %s\n", x.CaseID, x.Seq, x.Hash)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Heads returns the chain head of every case.
func (s *Service) Heads(ctx context.Context) (*ChainHeads, error) {
	var heads []ChainHead
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		heads, err = tx.ChainHeads(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(heads, func(a, b ChainHead) int { return strings.Compare(a.CaseID, b.CaseID) })
	if heads == nil {
		heads = []ChainHead{}
	}
	return &ChainHeads{At: s.now().UTC(), Count: len(heads), Digest: HeadsDigest(heads), Items: heads}, nil
}

// HeadExporterParams configures a HeadExporter.
type HeadExporterParams struct {
	Service *Service
	Logger  *slog.Logger
	// Interval is the time between two exports; 0 means 10 minutes.
	Interval time.Duration
	// Out, when set, also receives each export as one JSON line (a file
	// on another disk, a pipe to a log shipper).
	Out io.Writer
}

// HeadExporter writes the chain heads out regularly: a log line with
// their count and digest, and one line per case whose head moved since
// the last export. Kept outside the database, these lines let an auditor
// detect a rewrite of a whole chain, which the chain alone cannot.
type HeadExporter struct {
	p       HeadExporterParams
	log     *slog.Logger
	mu      sync.Mutex
	last    map[string]string // case id -> head hash at the last export
	closed  chan struct{}
	done    chan struct{}
	started sync.Once
	stopped sync.Once
	running bool // guarded by mu
}

// NewHeadExporter returns an exporter; Start runs it.
func NewHeadExporter(p HeadExporterParams) *HeadExporter {
	if p.Interval <= 0 {
		p.Interval = 10 * time.Minute
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	return &HeadExporter{p: p, log: p.Logger.With("component", "audit"), last: map[string]string{},
		closed: make(chan struct{}), done: make(chan struct{})}
}

// Start exports once now and then every Interval until Close. Calling it
// again does nothing.
func (x *HeadExporter) Start() {
	x.started.Do(func() {
		x.mu.Lock()
		x.running = true
		x.mu.Unlock()
		go x.run()
	})
}

func (x *HeadExporter) run() {
	defer close(x.done)
	t := time.NewTicker(x.p.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		go func() {
			select {
			case <-x.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		if _, err := x.ExportOnce(ctx); err != nil {
			x.log.Warn("audit heads export failed", "err", err)
		}
		cancel()
		select {
		case <-x.closed:
			return
		case <-t.C:
		}
	}
}

// ExportOnce reads the heads and writes them out.
func (x *HeadExporter) ExportOnce(ctx context.Context) (*ChainHeads, error) {
	heads, err := x.p.Service.Heads(ctx)
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.log.Info("audit chain heads", "cases", heads.Count, "digest", heads.Digest, "at", heads.At)
	for _, h := range heads.Items {
		if x.last[h.CaseID] != h.Hash {
			x.log.Info("audit chain head", "case", h.CaseID, "seq", h.Seq, "hash", h.Hash)
			x.last[h.CaseID] = h.Hash
		}
	}
	if x.p.Out != nil {
		b, err := json.Marshal(heads)
		if err != nil {
			return nil, err
		}
		if _, err := x.p.Out.Write(append(b, '\n')); err != nil {
			return nil, fmt.Errorf("audit heads: write: %w", err)
		}
	}
	return heads, nil
}

// Close stops the exporter and waits for it. It is idempotent, and safe
// for an exporter never started.
func (x *HeadExporter) Close() error {
	x.started.Do(func() {}) // a later Start does nothing
	x.stopped.Do(func() { close(x.closed) })
	x.mu.Lock()
	running := x.running
	x.mu.Unlock()
	if running {
		<-x.done
	}
	return nil
}
