package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
	"github.com/concord-odr/concord/cases/joinlink"
)

const userUsage = `Usage: concord user add --login LOGIN --role ROLE [flags]

Creates a staff account in the case store, typically the first platform
admin. Roles: platform_admin, institution_admin (--institution),
mediator (--institution, optionally --mediator MEDIATOR_ID: its mediator
record there), merchant_agent (--enterprise CREDIT_CODE), kiosk
(--institution: a community station; the device of its remote mediation
room).
The password is read from standard input with --password-stdin, or
generated and printed once.

Flags:
`

// runUser runs "concord user ...".
func runUser(args, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "add" {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	fs := flag.NewFlagSet("concord user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var login, name, role, inst, ent, med string
	var fromStdin bool
	fs.StringVar(&cfg.DataDir, "data-dir", envOr(env, "CONCORD_DATA_DIR", "concord-data"), "the server's data folder [CONCORD_DATA_DIR]")
	fs.StringVar(&cfg.DatabaseURL, "database-url", envOr(env, "CONCORD_DATABASE_URL", ""), "PostgreSQL URL; empty uses the embedded store [CONCORD_DATABASE_URL]")
	fs.StringVar(&login, "login", "", "the login (required)")
	fs.StringVar(&name, "name", "", "the person's name (default: the login)")
	fs.StringVar(&role, "role", "", "platform_admin, institution_admin, mediator, merchant_agent or kiosk (required)")
	fs.StringVar(&inst, "institution", "", "the institution id of an institution admin, a mediator or a kiosk")
	fs.StringVar(&med, "mediator", "", "a mediator account's mediator record, at its institution")
	fs.StringVar(&ent, "enterprise", "", "the credit code of a merchant agent's ODR enterprise")
	fs.BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.Usage = func() { fmt.Fprint(stderr, userUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if login == "" || role == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if name == "" {
		name = login
	}
	password := ""
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(stderr, "concord user add: read password: %v\n", err)
			return 1
		}
		password = strings.TrimRight(line, "\r\n")
	} else {
		password = generatePassword()
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := NewMain(cfg, stdout, slog.New(slog.DiscardHandler))
	defer m.Close()
	if err := m.openStore(ctx); err != nil {
		fmt.Fprintf(stderr, "concord user add: %v\n", err)
		return 1
	}
	key, older, err := joinlink.LoadKeyring(cfg.DataDir, "joinlink")
	if err == nil {
		m.signer, err = joinlink.NewSigner(key, older, nil)
	}
	staff, _, serr := joinlink.LoadKeyring(cfg.DataDir, "staff")
	if err == nil {
		err = serr
	}
	var id *identity.Service
	if err == nil {
		id, err = identity.New(identity.Params{Store: m.store, Links: m.signer, StaffKey: staff})
	}
	if err != nil {
		fmt.Fprintf(stderr, "concord user add: %v\n", err)
		return 1
	}
	a, err := id.CreateAccount(ctx, "cli", identity.NewAccount{Login: login, Name: name, Role: cases.StaffRole(role),
		InstitutionID: inst, EnterpriseCode: ent, MediatorID: med, Password: password})
	if err != nil {
		msg := cases.ErrorMessage(err)
		if cases.ErrorCode(err) == cases.EINTERNAL {
			msg = err.Error()
		}
		fmt.Fprintf(stderr, "concord user add: %s\n", msg)
		return 1
	}
	fmt.Fprintf(stdout, "created %s %s (%s)\n", a.Role, a.Login, a.ID)
	if !fromStdin {
		fmt.Fprintf(stdout, "password (shown once, change it after the first login): %s\n", password)
	}
	return 0
}

// envOr returns the value of name in env, or def.
func envOr(env []string, name, def string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return def
}

// generatePassword returns a random password of 26 characters (128
// bits).
func generatePassword() string { return rand.Text() }
