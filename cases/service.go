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
}

// Service applies the lifecycle rules on top of a Store.
type Service struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	cal   *calendar.Calendar
	rules *rules.Book
}

// NewService returns a Service.
func NewService(p ServiceParams) *Service {
	s := &Service{store: p.Store, log: p.Logger, now: p.Now, cal: p.Calendar, rules: p.Rules}
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
		return s.appendEvent(ctx, tx, c.ID, "session.scheduled", actor, map[string]any{"sessionId": sess.ID})
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
// the session's mediator may end it.
func (s *Service) EndSession(ctx context.Context, sessionID, actorID string, o Outcome) (*Case, *Session, error) {
	if !o.Result.Valid() {
		return nil, nil, FieldErrorf("result", "unknown outcome %q", o.Result)
	}
	if err := validText("terms", o.Terms, 20000, o.Result == ResultSettled || o.Result == ResultPartiallySettled); err != nil {
		return nil, nil, err
	}
	if o.Result == ResultNotSettled && len(o.Remedies) == 0 {
		return nil, nil, FieldErrorf("remedies", "a not-settled outcome needs the remedies shown to the applicant")
	}
	var c *Case
	var sess *Session
	err := s.store.Update(ctx, func(tx Tx) error {
		var err error
		sess, err = tx.Session(ctx, sessionID)
		if err != nil {
			return err
		}
		p, ok := sess.Participant(actorID)
		if !ok || p.Role != RoleMediator {
			return Errorf(ENOTFOUND, "no such session")
		}
		if sess.Status == SessionEnded {
			return Errorf(ETRANSITION, "the session has already ended")
		}
		c, err = tx.Case(ctx, sess.CaseID)
		if err != nil {
			return err
		}
		// A session of a case already closed by another session still ends,
		// but its outcome cannot change the case.
		if c.State != StateMediating && c.State != StateClosed {
			return Errorf(ETRANSITION, "a case in state %s cannot record an outcome", c.State)
		}
		if c.State == StateClosed && o.Result.Final() {
			return Errorf(ETRANSITION, "the case is already closed; end this session as adjourned")
		}
		now := s.now().UTC()
		if sess.StartedAt == nil {
			sess.StartedAt = &now
		}
		sess.EndedAt = &now
		sess.Status = SessionEnded
		closeAttendance(sess, "", now)
		if err := tx.PutSession(ctx, sess); err != nil {
			return err
		}
		o.SessionID = sess.ID
		o.RecordedBy = actorID
		o.RecordedAt = now
		if err := s.appendEvent(ctx, tx, c.ID, "session.ended", actorID, map[string]any{"sessionId": sess.ID, "result": o.Result}); err != nil {
			return err
		}
		if !o.Result.Final() {
			return s.appendEvent(ctx, tx, c.ID, "case.adjourned", actorID, o)
		}
		c.Outcome = &o
		return s.setStateLocked(ctx, tx, c, StateClosed, actorID, map[string]any{"outcome": o})
	})
	if err != nil {
		return nil, nil, err
	}
	return c, sess, nil
}

// CaseRecord is a case with its sessions and its event log.
type CaseRecord struct {
	*Case
	Sessions []Session `json:"sessions"`
	Events   []Event   `json:"events"`
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
