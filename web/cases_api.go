package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/identity"
)

// The case lifecycle API. Who may call what (see authz.go, where every
// decision is made):
//
//   - staff, by a staff access token, and the platform operator, by the
//     bearer token Params.AdminToken: creating cases at a window, by
//     phone or from a kiosk, the lifecycle steps, listing and search,
//     sessions and their join links, institutions, mediators and ODR
//     enterprises, each within the staff member's scope.
//   - an external platform, by an HMAC-SHA256 signature of the body with
//     Params.ImportSecret: importing a case with its external number.
//   - anyone: the online intake form, the list of institutions, the rule
//     sets (their reason codes are shown to applicants) and the OpenAPI
//     document.
//   - a participant of a case, by a join token: the case's events.

// Problem codes of the case API.
const (
	codeBadSignature = "bad_signature"
)

// operatorActor is the actor recorded for requests with the admin token.
const operatorActor = "operator"

// maxCaseBody is the largest request body the case API reads.
const maxCaseBody = 64 << 10

// signatureHeader carries "sha256=" and the hex HMAC of an import's body.
const signatureHeader = "X-Concord-Signature"

// registerCaseAPI adds the case lifecycle routes to the mux.
func (h *Handler) registerCaseAPI() {
	h.mux.HandleFunc("GET /api/v1/openapi.json", h.openAPI)
	h.mux.HandleFunc("POST /api/v1/intake", h.intake)
	h.mux.HandleFunc("POST /api/v1/imports/cases", h.importCase)
	h.mux.HandleFunc("GET /api/v1/rulesets", h.ruleSets)
	h.mux.HandleFunc("GET /api/v1/institutions", h.listInstitutions)
	h.mux.HandleFunc("POST /api/v1/institutions", h.guard(staffOnly, h.createInstitution))
	h.mux.HandleFunc("PUT /api/v1/institutions/{id}", h.guard(staffOnly, h.putInstitution))
	h.mux.HandleFunc("GET /api/v1/institutions/{id}/mediators", h.guard(staffOnly, h.listMediators))
	h.mux.HandleFunc("POST /api/v1/institutions/{id}/mediators", h.guard(staffOnly, h.createMediator))
	h.mux.HandleFunc("PUT /api/v1/enterprises/{creditCode}", h.operator(h.putEnterprise))
	h.mux.HandleFunc("POST /api/v1/cases", h.guard(staffOnly, h.createCase))
	h.mux.HandleFunc("GET /api/v1/cases", h.guard(staffOnly, h.listCases))
	h.mux.HandleFunc("POST /api/v1/cases/{id}/transitions", h.guard(staffOnly, h.transition))
	h.mux.HandleFunc("POST /api/v1/cases/{id}/sessions", h.guard(staffOnly, h.scheduleSession))
	h.mux.HandleFunc("GET /api/v1/cases/{id}/events", h.guard(staffOrParty, h.caseEvents))
}

// fieldProblem is a problem document that names the input at fault.
type fieldProblem struct {
	Problem
	Field string `json:"field,omitempty"`
}

// writeFieldProblem answers with a problem for code naming field.
func writeFieldProblem(w http.ResponseWriter, code, field, detail string) {
	status, ok := statusByCode[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(fieldProblem{
		Problem: Problem{
			Type:   "urn:concord:problem:" + code,
			Title:  http.StatusText(status),
			Status: status,
			Code:   code,
			Detail: detail,
		},
		Field: field,
	})
}

// writeCaseError answers with the problem for a domain error, naming its
// field, and logs the detail of unexpected errors.
func (h *Handler) writeCaseError(w http.ResponseWriter, r *http.Request, err error) {
	code := cases.ErrorCode(err)
	if code == cases.EINTERNAL {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeFieldProblem(w, code, cases.ErrorField(err), cases.ErrorMessage(err))
}

// readBody reads a JSON request body of at most maxCaseBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeProblem(w, codeUnsupported, "the body must be application/json")
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCaseBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, codeTooLarge, "the body is larger than 64 KiB")
			return nil, false
		}
		writeProblem(w, codeBadRequest, "the body could not be read")
		return nil, false
	}
	return b, true
}

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// wrong types and trailing data, and naming the field at fault.
func decodeStrict(w http.ResponseWriter, b []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			writeProblem(w, codeBadRequest, "the body must hold a single JSON object")
			return false
		}
		return true
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		// The path names embedded structs by their Go names; the client
		// knows only the JSON ones.
		field := strings.ReplaceAll(te.Field, embeddedInput+".", "")
		if field == "" {
			writeProblem(w, codeBadRequest, "the body must be a JSON object")
			return false
		}
		writeFieldProblem(w, codeBadRequest, field, "field "+field+" must be of type "+jsonType(te.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeFieldProblem(w, codeBadRequest, field, "unknown field "+strconv.Quote(field))
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		writeProblem(w, codeBadRequest, "the body is not valid JSON")
	case errors.Is(err, io.EOF):
		writeProblem(w, codeBadRequest, "the body is empty")
	default:
		writeProblem(w, codeBadRequest, "the body is not a valid JSON object for this endpoint")
	}
	return false
}

// jsonType names a Go kind as JSON calls it.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number (" + kind + ")"
}

// requestHash is the digest of a decoded request, for idempotency: the
// same request spelt with other spacing or key order has the same hash.
func requestHash(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// writeRaw writes a stored JSON answer.
func writeRaw(w http.ResponseWriter, status int, body []byte, replayed bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if replayed {
		w.Header().Set("Idempotency-Replayed", "true")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// encodeJSON encodes v as writeJSON does.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	err := json.NewEncoder(&buf).Encode(v)
	return buf.Bytes(), err
}

// partyInput is a party as intake receives it.
type partyInput struct {
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Phone      string `json:"phone,omitempty"`
	CreditCode string `json:"creditCode,omitempty"`
}

func (p partyInput) party() cases.Party {
	return cases.Party{Name: p.Name, Kind: p.Kind, Phone: p.Phone, CreditCode: p.CreditCode}
}

// embeddedInput is the Go name of caseInput where request types embed it.
const embeddedInput = "caseInput"

// caseInput is what every intake channel sends.
type caseInput struct {
	InstitutionID string     `json:"institutionId"`
	Category      string     `json:"category"`
	Applicant     partyInput `json:"applicant"`
	Respondent    partyInput `json:"respondent"`
	Claims        string     `json:"claims"`
	AmountCents   int64      `json:"amountCents"`
	IncidentDate  string     `json:"incidentDate,omitempty"`
}

// check applies the rules intake adds to the domain's: a known category
// and party kinds.
func (in caseInput) check() error {
	if !slices.Contains(cases.Categories(), in.Category) {
		return cases.FieldErrorf("category", "category must be one of %s", strings.Join(cases.Categories(), ", "))
	}
	for field, p := range map[string]partyInput{"applicant": in.Applicant, "respondent": in.Respondent} {
		if p.Kind != "person" && p.Kind != "organisation" {
			return cases.FieldErrorf(field+".kind", "%s.kind must be person or organisation", field)
		}
	}
	return nil
}

func (in caseInput) newCase(channel, ref, actor string) cases.NewCase {
	return cases.NewCase{
		InstitutionID: in.InstitutionID,
		Category:      in.Category,
		Channel:       channel,
		ExternalRef:   ref,
		Applicant:     in.Applicant.party(),
		Respondent:    in.Respondent.party(),
		Claims:        in.Claims,
		AmountCents:   in.AmountCents,
		IncidentDate:  in.IncidentDate,
		Actor:         actor,
	}
}

// createCaseRequest is the body of POST /api/v1/cases.
type createCaseRequest struct {
	Channel string `json:"channel"`
	caseInput
}

// staffChannels are the channels staff record a case from.
var staffChannels = []string{cases.ChannelWindow, cases.ChannelPhone, cases.ChannelKiosk, cases.ChannelOnline}

// createCase opens a case taken in by staff.
func (h *Handler) createCase(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req createCaseRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if !slices.Contains(staffChannels, req.Channel) {
		writeFieldProblem(w, cases.EINVALID, "channel", "channel must be one of "+strings.Join(staffChannels, ", "))
		return
	}
	if err := req.check(); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	p := principalOf(r)
	if err := h.authorize(r.Context(), p, actCreateCase, target{InstitutionID: req.InstitutionID}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	h.openOnce(w, r, p.actor()+":POST /api/v1/cases", req, req.newCase(req.Channel, "", p.actor()),
		func(c *cases.Case, _ bool) (int, []byte, error) {
			b, err := encodeJSON(c)
			return http.StatusCreated, b, err
		})
}

// openOnce opens a case, honouring the request's Idempotency-Key.
func (h *Handler) openOnce(w http.ResponseWriter, r *http.Request, scope string, req any, n cases.NewCase, respond cases.Respond) {
	key := cases.IdempotencyKey{Scope: scope, Key: r.Header.Get("Idempotency-Key"), RequestHash: requestHash(req)}
	ans, err := h.p.Cases.OpenCaseOnce(r.Context(), n, key, respond)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if !ans.Replayed && ans.Created {
		w.Header().Set("Location", "/api/v1/cases/"+ans.CaseID)
	}
	writeRaw(w, ans.Status, ans.Body, ans.Replayed)
}

// intakeRequest is the body of the public form, POST /api/v1/intake.
type intakeRequest struct {
	caseInput
}

// intakeAnswer is all the public form learns back.
type intakeAnswer struct {
	ID        string      `json:"id"`
	Number    string      `json:"number"`
	State     cases.State `json:"state"`
	CreatedAt string      `json:"createdAt"`
}

// intake opens a case from the applicant's own online form. It needs no
// authentication, so it checks more than staff intake: a phone number to
// reach the applicant and the claims are required.
func (h *Handler) intake(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req intakeRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if err := req.check(); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if strings.TrimSpace(req.Applicant.Phone) == "" {
		writeFieldProblem(w, cases.EINVALID, "applicant.phone", "applicant.phone is required so that the institution can reach you")
		return
	}
	if strings.TrimSpace(req.Claims) == "" {
		writeFieldProblem(w, cases.EINVALID, "claims", "claims is required: say what you ask for")
		return
	}
	h.openOnce(w, r, "public:POST /api/v1/intake", req, req.newCase(cases.ChannelOnline, "", "applicant"),
		func(c *cases.Case, _ bool) (int, []byte, error) {
			b, err := encodeJSON(intakeAnswer{ID: c.ID, Number: c.Number, State: c.State, CreatedAt: c.CreatedAt.Format("2006-01-02T15:04:05Z07:00")})
			return http.StatusCreated, b, err
		})
}

// importRequest is the body of POST /api/v1/imports/cases.
type importRequest struct {
	Source         string `json:"source"`
	ExternalNumber string `json:"externalNumber"`
	caseInput
}

// importAnswer tells the external platform our number for its case.
type importAnswer struct {
	ID             string      `json:"id"`
	Number         string      `json:"number"`
	State          cases.State `json:"state"`
	Source         string      `json:"source"`
	ExternalNumber string      `json:"externalNumber"`
	Created        bool        `json:"created"`
}

// importSources are the platforms cases are imported from.
var importSources = []string{cases.Channel12315, cases.ChannelPortal}

// importCase accepts a case from an external platform. The body is signed
// with the shared secret; sending the same external number again answers
// with the case it created the first time.
func (h *Handler) importCase(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	if !h.validSignature(r.Header.Get(signatureHeader), b) {
		writeProblem(w, codeBadSignature, "the "+signatureHeader+" header must be sha256= and the HMAC-SHA256 of the body with the shared secret")
		return
	}
	var req importRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if !slices.Contains(importSources, req.Source) {
		writeFieldProblem(w, cases.EINVALID, "source", "source must be one of "+strings.Join(importSources, ", "))
		return
	}
	if strings.TrimSpace(req.ExternalNumber) == "" {
		writeFieldProblem(w, cases.EINVALID, "externalNumber", "externalNumber is required")
		return
	}
	if err := req.check(); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	c, created, err := h.p.Cases.OpenCase(r.Context(), req.newCase(req.Source, req.ExternalNumber, "import:"+req.Source))
	if err != nil {
		if cases.ErrorField(err) == "externalRef" {
			err = &cases.Error{Code: cases.EINVALID, Field: "externalNumber", Message: strings.ReplaceAll(cases.ErrorMessage(err), "externalRef", "externalNumber")}
		}
		h.writeCaseError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, importAnswer{ID: c.ID, Number: c.Number, State: c.State, Source: c.Channel, ExternalNumber: c.ExternalRef, Created: created})
}

// validSignature checks an import's signature header against its body.
func (h *Handler) validSignature(header string, body []byte) bool {
	if h.p.ImportSecret == "" {
		return false
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(h.p.ImportSecret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// outcomeInput is an outcome in a transition request.
type outcomeInput struct {
	Result   cases.Result `json:"result"`
	Terms    string       `json:"terms,omitempty"`
	Remedies []string     `json:"remedies,omitempty"`
}

// transitionRequest is the body of POST /api/v1/cases/{id}/transitions.
type transitionRequest struct {
	To                   cases.State   `json:"to"`
	Version              int64         `json:"version,omitempty"`
	InstitutionID        string        `json:"institutionId,omitempty"`
	MediatorID           string        `json:"mediatorId,omitempty"`
	ReasonCode           string        `json:"reasonCode,omitempty"`
	Reason               string        `json:"reason,omitempty"`
	Outcome              *outcomeInput `json:"outcome,omitempty"`
	By                   string        `json:"by,omitempty"`
	Body                 string        `json:"body,omitempty"`
	ArbitrationAgreement bool          `json:"arbitrationAgreement,omitempty"`
	Note                 string        `json:"note,omitempty"`
}

// ifMatchVersion reads the case version of an If-Match header ("3" or 3).
func ifMatchVersion(r *http.Request) (int64, bool, error) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
	if err != nil || n < 1 {
		return 0, false, errors.New("If-Match must hold the case version, as its ETag gives it")
	}
	return n, true, nil
}

// transition performs one lifecycle step on a case.
func (h *Handler) transition(w http.ResponseWriter, r *http.Request) {
	// Whoever may not see the case learns nothing, not even whether the
	// body would have been valid.
	p := principalOf(r)
	c, err := h.p.Cases.Case(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.caseVisible(r.Context(), p, c)
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req transitionRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if req.To == "" {
		writeFieldProblem(w, cases.EINVALID, "to", "to is required: the state to move the case to")
		return
	}
	if req.Version < 0 {
		writeFieldProblem(w, cases.EINVALID, "version", "version must be positive")
		return
	}
	v, set, err := ifMatchVersion(r)
	if err != nil {
		writeFieldProblem(w, codeBadRequest, "If-Match", err.Error())
		return
	}
	if set {
		if req.Version != 0 && req.Version != v {
			writeFieldProblem(w, codeBadRequest, "version", "version and If-Match disagree")
			return
		}
		req.Version = v
	}
	if err := h.authorize(r.Context(), p, actTransition, target{Case: c, To: req.To}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if req.Version == 0 && !p.platform() {
		// The decision above holds for the case as read: a change since
		// (a transfer to another institution) must not slip under it.
		req.Version = c.Version
	}
	tr := cases.TransitionRequest{
		To: req.To, Actor: p.actor(), Version: req.Version,
		InstitutionID: req.InstitutionID, MediatorID: req.MediatorID,
		ReasonCode: req.ReasonCode, Reason: req.Reason,
		By: req.By, Body: req.Body, ArbitrationAgreement: req.ArbitrationAgreement, Note: req.Note,
	}
	if req.Outcome != nil {
		tr.Outcome = &cases.Outcome{Result: req.Outcome.Result, Terms: req.Outcome.Terms, Remedies: req.Outcome.Remedies}
	}
	c, err = h.p.Cases.Apply(r.Context(), r.PathValue("id"), tr)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(c.Version, 10)))
	writeJSON(w, http.StatusOK, c)
}

// participantInput is one participant of a session to schedule.
type participantInput struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Side string `json:"side"`
	// Phone, when set, is where the participant's join link is sent;
	// Channel is how (sms, the default, or wechat, with an openid in
	// Phone).
	Phone   string `json:"phone,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// scheduleRequest is the body of POST /api/v1/cases/{id}/sessions.
type scheduleRequest struct {
	Participants []participantInput `json:"participants"`
	// Notify, true unless given false, sends each party its join link:
	// to the phone given for it or, for the only party of a side, to the
	// phone of the case's applicant or respondent.
	Notify *bool `json:"notify,omitempty"`
}

// sessionAnswer is a scheduled session with its participants' links.
type sessionAnswer struct {
	*cases.Session
	Links []identity.IssuedLink `json:"links"`
}

// scheduleSession creates a session of an accepted or mediating case,
// issues a short join link for each participant and queues the parties'
// links for SMS or WeChat, all in one transaction.
func (h *Handler) scheduleSession(w http.ResponseWriter, r *http.Request) {
	p := principalOf(r)
	c, err := h.p.Cases.Case(r.Context(), r.PathValue("id"))
	if err == nil {
		err = h.authorize(r.Context(), p, actScheduleSession, target{Case: c})
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req scheduleRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	notify := req.Notify == nil || *req.Notify
	ps := make([]cases.Participant, len(req.Participants))
	explicit := map[int]identity.Recipient{}
	for i, in := range req.Participants {
		ps[i] = cases.Participant{Name: in.Name, Role: in.Role, Side: in.Side}
		if in.Channel != "" && in.Phone == "" {
			writeFieldProblem(w, cases.EINVALID, "participants.phone", "participants.channel needs participants.phone")
			return
		}
		if in.Phone != "" {
			rc := identity.Recipient{Channel: in.Channel, To: strings.TrimSpace(in.Phone)}
			if rc.Channel == "" {
				rc.Channel = cases.NotifySMS
			}
			if err := rc.Check("participants"); err != nil {
				h.writeCaseError(w, r, err)
				return
			}
			explicit[i] = rc
		}
	}
	var links []identity.IssuedLink
	var hook cases.SessionHook
	if h.p.Identity != nil {
		hook = func(ctx context.Context, tx cases.Tx, c *cases.Case, sess *cases.Session) error {
			to := map[string]identity.Recipient{}
			if notify {
				to = h.recipients(c, sess, explicit)
			}
			var err error
			links, err = h.p.Identity.IssueLinksTx(ctx, tx, c, sess, p.actor(), nil, to)
			return err
		}
	}
	sess, err := h.p.Cases.ScheduleSessionWith(r.Context(), c.ID, p.actor(), ps, hook)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	if h.p.Identity != nil {
		h.p.Identity.Queued()
	}
	if links == nil {
		links = []identity.IssuedLink{}
	}
	writeJSON(w, http.StatusCreated, sessionAnswer{Session: sess, Links: links})
}

// recipients says where each participant's link goes: the phone given
// for it, or, for the only party of the applicant's or the respondent's
// side, that party's phone on the case. A phone on the case that is not
// a usable number is skipped.
func (h *Handler) recipients(c *cases.Case, sess *cases.Session, explicit map[int]identity.Recipient) map[string]identity.Recipient {
	to := map[string]identity.Recipient{}
	perSide := map[string]int{}
	for _, p := range sess.Participants {
		if p.Role == cases.RoleParty {
			perSide[p.Side]++
		}
	}
	for i, p := range sess.Participants {
		if rc, ok := explicit[i]; ok {
			to[p.ID] = rc
			continue
		}
		if p.Role != cases.RoleParty || perSide[p.Side] != 1 {
			continue
		}
		phone := ""
		switch p.Side {
		case cases.SideApplicant:
			phone = c.Applicant.Phone
		case cases.SideRespondent:
			phone = c.Respondent.Phone
		}
		rc := identity.Recipient{Channel: cases.NotifySMS, To: strings.TrimSpace(phone)}
		if phone == "" {
			continue
		}
		if rc.Check("phone") != nil {
			h.log.Warn("join link not sent: the case's phone number is not usable", "case", c.ID, "side", p.Side)
			continue
		}
		to[p.ID] = rc
	}
	return to
}

// listQuery names the query parameters of GET /api/v1/cases.
var listQuery = []string{"state", "institutionId", "category", "overdue", "createdFrom", "createdTo", "limit", "cursor"}

// listCases lists and searches cases for staff.
func (h *Handler) listCases(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name, vs := range q {
		if !slices.Contains(listQuery, name) {
			writeFieldProblem(w, codeBadRequest, name, "unknown query parameter "+strconv.Quote(name)+"; known: "+strings.Join(listQuery, ", "))
			return
		}
		if len(vs) > 1 {
			writeFieldProblem(w, codeBadRequest, name, "query parameter "+name+" given more than once")
			return
		}
	}
	cq := cases.CaseQuery{
		State:         cases.State(q.Get("state")),
		InstitutionID: q.Get("institutionId"),
		Category:      q.Get("category"),
		CreatedFrom:   q.Get("createdFrom"),
		CreatedTo:     q.Get("createdTo"),
		Cursor:        q.Get("cursor"),
	}
	switch q.Get("overdue") {
	case "", "false":
	case "true":
		cq.Overdue = true
	default:
		writeFieldProblem(w, cases.EINVALID, "overdue", "overdue must be true or false")
		return
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeFieldProblem(w, cases.EINVALID, "limit", "limit must be a whole number")
			return
		}
		cq.Limit = n
		if n == 0 {
			cq.Limit = -1 // 0 given explicitly is out of range
		}
	}
	if err := h.caseQueryScope(r.Context(), principalOf(r), &cq); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	page, err := h.p.Cases.ListCases(r.Context(), cq)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// eventsAnswer is the body of GET /api/v1/cases/{id}/events.
type eventsAnswer struct {
	CaseID string        `json:"caseId"`
	Items  []cases.Event `json:"items"`
}

// caseEvents returns a case's history to staff who may see the case or
// to a participant of that case; anyone else is told the case does not
// exist.
func (h *Handler) caseEvents(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, err := h.p.Cases.Case(r.Context(), id)
	if err == nil {
		err = h.authorize(r.Context(), principalOf(r), actReadCase, target{Case: c})
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	events, err := h.p.Cases.Events(r.Context(), id)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, eventsAnswer{CaseID: id, Items: events})
}

// ruleSets lists the rule sets with their deadlines and reason codes.
func (h *Handler) ruleSets(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": h.p.Cases.Rules().All()})
}

// institutionRequest is the body of POST and PUT on institutions.
type institutionRequest struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Level    string `json:"level"`
	ParentID string `json:"parentId,omitempty"`
	Status   string `json:"status,omitempty"`
}

func (h *Handler) listInstitutions(w http.ResponseWriter, r *http.Request) {
	list, err := h.p.Cases.Institutions(r.Context())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (h *Handler) createInstitution(w http.ResponseWriter, r *http.Request) {
	h.saveInstitution(w, r, "", http.StatusCreated)
}

func (h *Handler) putInstitution(w http.ResponseWriter, r *http.Request) {
	h.saveInstitution(w, r, r.PathValue("id"), http.StatusOK)
}

func (h *Handler) saveInstitution(w http.ResponseWriter, r *http.Request, id string, status int) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req institutionRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if id != "" && (len(id) > 64 || strings.ContainsAny(id, " /?#")) {
		writeFieldProblem(w, cases.EINVALID, "id", "the institution id is too long or has reserved characters")
		return
	}
	if err := h.authorize(r.Context(), principalOf(r), actWriteInstitution, target{InstitutionID: id, ParentID: req.ParentID}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	inst := &cases.Institution{ID: id, Code: req.Code, Name: req.Name, Level: req.Level, ParentID: req.ParentID, Status: req.Status}
	if err := h.p.Cases.PutInstitution(r.Context(), inst); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, status, inst)
}

// mediatorRequest is the body of POST /api/v1/institutions/{id}/mediators.
type mediatorRequest struct {
	Name   string `json:"name"`
	Status string `json:"status,omitempty"`
}

func (h *Handler) listMediators(w http.ResponseWriter, r *http.Request) {
	if err := h.authorize(r.Context(), principalOf(r), actReadMediators, target{InstitutionID: r.PathValue("id")}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	list, err := h.p.Cases.Mediators(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (h *Handler) createMediator(w http.ResponseWriter, r *http.Request) {
	if err := h.authorize(r.Context(), principalOf(r), actWriteMediators, target{InstitutionID: r.PathValue("id")}); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req mediatorRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	// The institution is the resource addressed: unknown, it is not found.
	if _, err := h.p.Cases.Institution(r.Context(), r.PathValue("id")); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	m := &cases.Mediator{InstitutionID: r.PathValue("id"), Name: req.Name, Status: req.Status}
	if err := h.p.Cases.PutMediator(r.Context(), m); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, m)
}

// enterpriseRequest is the body of PUT /api/v1/enterprises/{creditCode}.
type enterpriseRequest struct {
	Name   string `json:"name"`
	Status string `json:"status,omitempty"`
}

func (h *Handler) putEnterprise(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req enterpriseRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	e := &cases.Enterprise{CreditCode: r.PathValue("creditCode"), Name: req.Name, Status: req.Status}
	if err := h.p.Cases.PutEnterprise(r.Context(), e); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}
