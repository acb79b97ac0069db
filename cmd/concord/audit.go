package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/postgres"
	"github.com/concord-odr/concord/cases/sqlite"
)

const auditUsage = `Usage:
  concord audit verify CASE [flags]   recompute a case's hash chain; report the first broken link
  concord audit heads [flags]         print every case's chain head and their digest (JSON)

Flags (each also read from the environment variable in brackets):
  --data-dir DIR        the embedded store's folder [CONCORD_DATA_DIR] (default concord-data)
  --database-url URL    PostgreSQL instead of the embedded store [CONCORD_DATABASE_URL]
  --head SEQ:HASH       verify only: also check the chain against a head exported earlier
                        (GET /api/v1/audit/heads or the "audit chain head" log lines)
  --json                verify only: print the report as JSON

verify exits 0 when the chain is intact, 1 when it is broken or cannot be read,
2 on a usage error. It reads the store and changes nothing.
`

// runAudit is "concord audit": it reads the configured case store, as
// serve does, and never writes to it.
func runAudit(args, env []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, auditUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, rest := args[0], args[1:]
	if sub != "verify" && sub != "heads" {
		fmt.Fprintf(stderr, "concord audit: unknown command %q\n\n%s", sub, auditUsage)
		return 2
	}
	fs := flag.NewFlagSet("concord audit "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, auditUsage) }
	dataDir := fs.String("data-dir", "concord-data", "")
	dbURL := fs.String("database-url", "", "")
	head := fs.String("head", "", "")
	asJSON := fs.Bool("json", false, "")
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "CONCORD_DATA_DIR":
			*dataDir = v
		case "CONCORD_DATABASE_URL":
			*dbURL = v
		}
	}
	// The case id may come before or after the flags.
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional = append(positional, rest[0])
		rest = rest[1:]
	}
	want := 0
	if sub == "verify" {
		want = 1
	}
	if len(positional) != want {
		fmt.Fprintf(stderr, "concord audit %s: expected %d argument(s), got %d\n\n%s", sub, want, len(positional), auditUsage)
		return 2
	}
	var wantSeq int64
	var wantHash string
	if *head != "" {
		s, h, ok := strings.Cut(*head, ":")
		n, err := strconv.ParseInt(s, 10, 64)
		if !ok || err != nil || n < 1 || len(h) != 64 {
			fmt.Fprintln(stderr, "concord audit verify: --head must be SEQ:HASH, as the exported heads give them")
			return 2
		}
		wantSeq, wantHash = n, h
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := openAuditStore(ctx, *dataDir, *dbURL)
	if err != nil {
		fmt.Fprintf(stderr, "concord audit: %v\n", err)
		return 1
	}
	defer store.Close()
	svc := cases.NewService(cases.ServiceParams{Store: store})

	if sub == "heads" {
		heads, err := svc.Heads(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "concord audit heads: %v\n", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(heads)
		return 0
	}

	caseID := positional[0]
	rep, err := svc.VerifyCase(ctx, caseID)
	if err != nil {
		if cases.ErrorCode(err) == cases.ENOTFOUND {
			fmt.Fprintf(stderr, "concord audit verify: case %s has no events\n", caseID)
		} else {
			fmt.Fprintf(stderr, "concord audit verify: %v\n", err)
		}
		return 1
	}
	var headMismatch string
	if wantHash != "" && rep.OK {
		events, err := svc.Events(ctx, caseID)
		if err != nil {
			fmt.Fprintf(stderr, "concord audit verify: %v\n", err)
			return 1
		}
		switch {
		case wantSeq > int64(len(events)):
			headMismatch = fmt.Sprintf("the exported head is event %d, but the log has only %d events: events were deleted", wantSeq, len(events))
		case events[wantSeq-1].Hash != wantHash:
			headMismatch = fmt.Sprintf("event %d has hash %s, but the exported head says %s: the chain was rewritten", wantSeq, events[wantSeq-1].Hash, wantHash)
		}
		if headMismatch != "" {
			rep.OK = false
			rep.Break = &cases.ChainBreak{Seq: wantSeq, Reason: headMismatch, Want: wantHash}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else if rep.OK {
		fmt.Fprintf(stdout, "case %s: %d events, chain intact; head: event %d, hash %s\n", caseID, rep.Events, rep.Head.Seq, rep.Head.Hash)
		if wantHash != "" {
			fmt.Fprintf(stdout, "the exported head (event %d) matches\n", wantSeq)
		}
	} else {
		b := rep.Break
		fmt.Fprintf(stdout, "case %s: chain BROKEN at event %d: %s\n", caseID, b.Seq, b.Reason)
		if b.Stored != "" || b.Want != "" {
			fmt.Fprintf(stdout, "  stored:     %s\n  recomputed: %s\n", b.Stored, b.Want)
		}
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// openAuditStore opens the case store serve would use, without creating
// or migrating anything.
func openAuditStore(ctx context.Context, dataDir, dbURL string) (cases.Store, error) {
	if dbURL != "" {
		s, err := postgres.Open(ctx, dbURL)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return s, nil
	}
	path := filepath.Join(dataDir, "cases.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no embedded store at %s: %w", path, err)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", path, err)
	}
	return s, nil
}
