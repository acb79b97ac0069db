package cases

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/concord-odr/concord/cases/calendar"
	"github.com/concord-odr/concord/cases/rules"
)

// ServiceParams configures a Service.
type ServiceParams struct {
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time // defaults to time.Now
	// Calendar counts working days; nil means the embedded calendar.
	Calendar *calendar.Calendar
	// Rules holds the rule sets; nil means the embedded ones.
	Rules *rules.Book
	// Outbox, when set, keeps the outcomes EndSessionDurably could not
	// write because the store was unreachable.
	Outbox *OutcomeOutbox
}

// Service applies the lifecycle rules on top of a Store.
type Service struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	cal   *calendar.Calendar
	rules *rules.Book
	// outbox is ServiceParams.Outbox.
	outbox *OutcomeOutbox
}

// NewService returns a Service.
func NewService(p ServiceParams) *Service {
	s := &Service{store: p.Store, log: p.Logger, now: p.Now, cal: p.Calendar, rules: p.Rules, outbox: p.Outbox}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cal == nil {
		cal, err := calendar.Embedded()
		if err != nil { // the embedded files are checked by calendar's tests
			s.log.Error("embedded working-day calendar", "err", err)
			cal, _ = calendar.New()
		}
		s.cal = cal
	}
	if s.rules == nil {
		book, err := rules.Embedded()
		if err != nil { // checked by the rules package's tests
			s.log.Error("embedded rule sets", "err", err)
			book, _ = rules.New(&rules.RuleSet{ID: "fallback", Name: "fallback", EffectiveFrom: "2000-01-01",
				RespondentContactDays: 3, ReconciliationDays: 10, ConfirmationWindowDays: 30,
				RejectReasons: []rules.Reason{{Code: "other", Label: "other"}}})
		}
		s.rules = book
	}
	return s
}

// Rules returns the rule sets the service applies.
func (s *Service) Rules() *rules.Book { return s.rules }

// Now returns the service's current time.
func (s *Service) Now() time.Time { return s.now() }

// Store returns the service's store.
func (s *Service) Store() Store { return s.store }

// NewID returns a random identifier with the given prefix, safe in URLs.
func NewID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

func (s *Service) event(caseID, typ, actor string, payload any) (*Event, error) {
	e := &Event{CaseID: caseID, Type: typ, Actor: actor, At: s.now().UTC()}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return nil, fmt.Errorf("encode %s payload: %w", typ, err)
		}
		e.Payload = b
	}
	return e, nil
}

func (s *Service) appendEvent(ctx context.Context, tx Tx, caseID, typ, actor string, payload any) error {
	e, err := s.event(caseID, typ, actor, payload)
	if err != nil {
		return err
	}
	return tx.AppendEvent(ctx, e)
}

// validText checks a text input; field names it as the API spells it.
func validText(field, v string, max int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return FieldErrorf(field, "%s is required", field)
	}
	if !utf8.ValidString(v) {
		return FieldErrorf(field, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return FieldErrorf(field, "%s contains a control character", field)
		}
	}
	if utf8.RuneCountInString(v) > max {
		return FieldErrorf(field, "%s is longer than %d characters", field, max)
	}
	return nil
}

// validField is validText under the name the lifecycle code uses.
func validField(field, v string, max int, required bool) error {
	return validText(field, v, max, required)
}

// ScheduleSession creates a session for a case that is accepted or being
// mediated; the first session moves an accepted case to mediating.
func (s *Service) ScheduleSession(ctx context.Context, caseID, actor string, participants []Participant) (*Session, error) {
	return s.ScheduleSessionWith(ctx, caseID, actor, participants, nil)
}

// SessionHook runs inside the transaction that creates a session, after
// the session is written: what it writes commits with the session, and
// its error undoes both.
type SessionHook func(ctx context.Context, tx Tx, c *Case, sess *Session) error

// ScheduleSessionWith is ScheduleSession with a hook run in its
// transaction (issuing the participants' join links, for example); then
// may be nil.
func (s *Service) ScheduleSessionWith(ctx context.Context, caseID, actor string, participants []Participant, then SessionHook) (*Session, error) {
	if len(participants) == 0 {
		return nil, FieldErrorf("participants", "a session needs participants")
	}
	participants = append([]Participant(nil), participants...)
	hasMediator := false
	for i := range participants {
		p := &participants[i]
		if err := validText("participants.name", p.Name, 200, true); err != nil {
			return nil, err
		}
		switch p.Role {
		case RoleMediator:
			hasMediator = true
		case RoleParty:
		default:
			return nil, FieldErrorf("participants.role", "unknown participant role %q", p.Role)
		}
		switch p.Side {
		case SideApplicant, SideRespondent, SideNeutral:
		default:
			return nil, FieldErrorf("participants.side", "unknown participant side %q", p.Side)
		}
		if p.ID == "" {
			p.ID = NewID("p_")
		}
	}
	if !hasMediator {
		return nil, FieldErrorf("participants", "a session needs a mediator")
	}
	var sess *Session
	err := s.store.Update(ctx, func(tx Tx) error {
		c, err := tx.Case(ctx, caseID)
		if err != nil {
			return err
		}
		switch c.State {
		case StateAccepted:
			if err := s.transitionLocked(ctx, tx, c, StateMediating, actor, nil); err != nil {
				return err
			}
		case StateMediating:
		default:
			return Errorf(ETRANSITION, "a case in state %s cannot have a session", c.State)
		}
		sess = &Session{
			ID:           NewID("s_"),
			CaseID:       c.ID,
			Mode:         "joint",
			Status:       SessionScheduled,
			Participants: participants,
			Attendance:   []Attendance{},
			CreatedAt:    s.now().UTC(),
		}
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		if err := s.appendEvent(ctx, tx, c.ID, "session.scheduled", actor, map[string]any{"sessionId": sess.ID}); err != nil {
			return err
		}
		if then != nil {
			return then(ctx, tx, c, sess)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// RecordJoin notes that a participant entered a session's room; the first
// join starts the session. A stay still open for the participant ends.
func (s *Service) RecordJoin(ctx context.Context, sessionID, participantID string, at time.Time) error {
	return s.store.Update(ctx, func(tx Tx) error {
		sess, err := tx.Session(ctx, sessionID)
		if err != nil {
			return err
		}
		if sess.Status == SessionEnded {
			return Errorf(ETRANSITION, "the session has ended")
		}
		if _, ok := sess.Participant(participantID); !ok {
			return Errorf(ENOTFOUND, "no such participant")
		}
		at = at.UTC()
		if sess.StartedAt == nil {
			sess.StartedAt = &at
			sess.Status = SessionLive
			if err := s.appendEvent(ctx, tx, sess.CaseID, "session.started", participantID, map[string]any{"sessionId": sess.ID}); err != nil {
				return err
			}
		}
		// A join while a stay is open is the same person on a new device:
		// the old stay ends where the new one begins.
		closeAttendance(sess, participantID, at)
		sess.Attendance = append(sess.Attendance, Attendance{ParticipantID: participantID, JoinedAt: at})
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, sess.CaseID, "session.joined", participantID, map[string]any{"sessionId": sess.ID})
	})
}

// RecordLeave closes a participant's open attendance in a session.
func (s *Service) RecordLeave(ctx context.Context, sessionID, participantID string, at time.Time) error {
	return s.store.Update(ctx, func(tx Tx) error {
		sess, err := tx.Session(ctx, sessionID)
		if err != nil {
			return err
		}
		at = at.UTC()
		if !closeAttendance(sess, participantID, at) {
			return nil
		}
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, sess.CaseID, "session.left", participantID, map[string]any{"sessionId": sess.ID})
	})
}

// closeAttendance ends participantID's open stays (all of them when
// participantID is empty) and reports whether it changed anything.
func closeAttendance(sess *Session, participantID string, at time.Time) bool {
	changed := false
	for i := range sess.Attendance {
		a := &sess.Attendance[i]
		if a.LeftAt == nil && (participantID == "" || a.ParticipantID == participantID) {
			t := at
			a.LeftAt = &t
			changed = true
		}
	}
	return changed
}

// EndSession ends a session and records its outcome. A final result
// closes the case with that outcome; adjourned leaves it mediating. Only
// the session's mediator may end it. Ending it again with the same
// outcome is a retry: it records nothing and returns the same case and
// session (see RecordOutcome in outcome.go).
func (s *Service) EndSession(ctx context.Context, sessionID, actorID string, o Outcome) (*Case, *Session, error) {
	res, err := s.RecordOutcome(ctx, EndRequest{SessionID: sessionID, ActorID: actorID, Outcome: o})
	if err != nil {
		return nil, nil, err
	}
	return res.Case, res.Session, nil
}

// CaseRecord is a case with its sessions and its event log.
type CaseRecord struct {
	*Case
	Sessions []Session `json:"sessions"`
	Events   []Event   `json:"events"`
	// SessionModes gives, per session id, the seconds spent in joint
	// session ("joint") and in caucus with each side ("caucus:applicant",
	// "caucus:respondent"), from the room events; live sessions count to now.
	SessionModes map[string]map[string]float64 `json:"sessionModes"`
}

// Record reads a case with its sessions and events.
func (s *Service) Record(ctx context.Context, caseID string) (*CaseRecord, error) {
	var r CaseRecord
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		if r.Case, err = tx.Case(ctx, caseID); err != nil {
			return err
		}
		if r.Sessions, err = tx.Sessions(ctx, caseID); err != nil {
			return err
		}
		r.Events, err = tx.Events(ctx, caseID)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.SessionModes = map[string]map[string]float64{}
	for _, sess := range r.Sessions {
		modes := map[string]float64{}
		for k, d := range ModeDurations(r.Events, sess.ID, s.now()) {
			modes[k] = d.Seconds()
		}
		r.SessionModes[sess.ID] = modes
	}
	return &r, nil
}

// Session reads one session.
func (s *Service) Session(ctx context.Context, id string) (*Session, error) {
	var sess *Session
	err := s.store.View(ctx, func(tx Tx) error {
		var err error
		sess, err = tx.Session(ctx, id)
		return err
	})
	return sess, err
}
