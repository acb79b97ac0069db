package web

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/agreementpdf"
)

// The agreement API: the mediation agreement of a case (draft, confirm,
// sign, correct, download), the follow-ups of its terms, the audit trail
// and the court's or arbitration body's confirmation result. Who may call
// what is decided in agreement_authz.go.

// registerAgreementAPI adds the agreement, follow-up and audit routes.
func (h *Handler) registerAgreementAPI() {
	h.mux.HandleFunc("GET /api/v1/cases/{id}/agreements", h.listAgreements)
	h.mux.HandleFunc("GET /api/v1/cases/{id}/agreements/template", h.agreementTemplate)
	h.mux.HandleFunc("PUT /api/v1/cases/{id}/agreements/draft", h.draftAgreement)
	h.mux.HandleFunc("GET /api/v1/cases/{id}/agreements/{aid}", h.getAgreement)
	h.mux.HandleFunc("GET /api/v1/cases/{id}/agreements/{aid}/pdf", h.agreementPDF)
	h.mux.HandleFunc("POST /api/v1/cases/{id}/agreements/{aid}/confirmations", h.confirmAgreement)
	h.mux.HandleFunc("POST /api/v1/cases/{id}/agreements/{aid}/signature", h.signAgreement)
	h.mux.HandleFunc("POST /api/v1/cases/{id}/agreements/{aid}/corrections", h.correctAgreement)
	h.mux.HandleFunc("POST /api/v1/cases/{id}/agreements/{aid}/terms/{no}/performance", h.reportPerformance)
	h.mux.HandleFunc("GET /api/v1/cases/{id}/followups", h.caseFollowUps)
	h.mux.HandleFunc("GET /api/v1/followups", h.operator(h.listFollowUps))
	h.mux.HandleFunc("GET /api/v1/audit/heads", h.operator(h.auditHeads))
	h.mux.HandleFunc("GET /api/v1/cases/{id}/audit", h.operator(h.auditCase))
	h.mux.HandleFunc("POST /api/v1/webhooks/confirmation-results", h.confirmationResult)
}

// agreementsAnswer is the body of GET /api/v1/cases/{id}/agreements.
type agreementsAnswer struct {
	CaseID string            `json:"caseId"`
	Items  []cases.Agreement `json:"items"`
}

func (h *Handler) listAgreements(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrRead)
	if !ok {
		return
	}
	list, err := h.p.Cases.Agreements(r.Context(), id)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	items := []cases.Agreement{}
	for _, a := range list {
		if c.seesAgreement(&a) {
			items = append(items, a)
		}
	}
	writeJSON(w, http.StatusOK, agreementsAnswer{CaseID: id, Items: items})
}

// agreementTemplate returns a draft's content filled in from the case.
func (h *Handler) agreementTemplate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrTemplate)
	if !ok {
		return
	}
	tpl, err := h.p.Cases.AgreementTemplate(r.Context(), id, c.actor)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tpl)
}

// draftRequest is the body of PUT /api/v1/cases/{id}/agreements/draft.
type draftRequest struct {
	Content   cases.AgreementContent `json:"content"`
	VisibleTo string                 `json:"visibleTo,omitempty"`
	// Revision is the draft revision edited: 0 to start one.
	Revision int `json:"revision"`
}

// draftAgreement starts or edits the case's open draft.
func (h *Handler) draftAgreement(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrDraft)
	if !ok {
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req draftRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	a, err := h.p.Cases.DraftAgreement(r.Context(), cases.DraftRequest{
		CaseID: id, Actor: c.actor, Content: req.Content, VisibleTo: req.VisibleTo, Revision: req.Revision,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	h.announceAgreement(a)
	writeJSON(w, http.StatusOK, a)
}

// readAgreement reads an agreement the caller may see.
func (h *Handler) readAgreement(w http.ResponseWriter, r *http.Request) (*cases.Agreement, bool) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrRead)
	if !ok {
		return nil, false
	}
	a, err := h.p.Cases.Agreement(r.Context(), id, r.PathValue("aid"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return nil, false
	}
	if !c.seesAgreement(a) {
		writeProblem(w, cases.ENOTFOUND, "agreement not found")
		return nil, false
	}
	return a, true
}

// attachment sets the headers of a download named name.
func attachment(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Disposition", "attachment; filename=\""+name+"\"; filename*=UTF-8''"+url.PathEscape(name))
}

// agreementFile is the download name of an agreement.
func agreementFile(a *cases.Agreement, ext string) string {
	return fmt.Sprintf("agreement-%s-%d.%s", a.CaseNumber, a.Number, ext)
}

// getAgreement returns one agreement as JSON; ?download=1 makes it a
// file to save.
func (h *Handler) getAgreement(w http.ResponseWriter, r *http.Request) {
	a, ok := h.readAgreement(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Get("download") == "1" {
		attachment(w, agreementFile(a, "json"))
	}
	w.Header().Set("ETag", strconv.Quote(a.TextHash))
	writeJSON(w, http.StatusOK, a)
}

// agreementPDF renders an agreement as a PDF.
func (h *Handler) agreementPDF(w http.ResponseWriter, r *http.Request) {
	a, ok := h.readAgreement(w, r)
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := agreementpdf.Render(&buf, a); err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Cache-Control", "no-store")
	attachment(w, agreementFile(a, "pdf"))
	_, _ = w.Write(buf.Bytes())
}

// textHashRequest is the body of a confirmation or a signature: the
// SHA-256 of the exact text the caller read.
type textHashRequest struct {
	TextHash string `json:"textHash"`
}

func (h *Handler) readTextHash(w http.ResponseWriter, r *http.Request) (string, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return "", false
	}
	var req textHashRequest
	if !decodeStrict(w, b, &req) {
		return "", false
	}
	if len(req.TextHash) != 64 {
		writeFieldProblem(w, cases.EINVALID, "textHash", "textHash must be the hex SHA-256 of the agreement text you read")
		return "", false
	}
	return req.TextHash, true
}

// confirmAgreement records the calling party's confirmation.
func (h *Handler) confirmAgreement(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrConfirm)
	if !ok {
		return
	}
	hash, ok := h.readTextHash(w, r)
	if !ok {
		return
	}
	a, err := h.p.Cases.ConfirmAgreement(r.Context(), cases.ConfirmRequest{
		CaseID: id, AgreementID: r.PathValue("aid"), Actor: c.actor, TextHash: hash,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	h.announceAgreement(a)
	writeJSON(w, http.StatusOK, a)
}

// signAgreement is the mediator's signature.
func (h *Handler) signAgreement(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrSign)
	if !ok {
		return
	}
	hash, ok := h.readTextHash(w, r)
	if !ok {
		return
	}
	a, err := h.p.Cases.SignAgreement(r.Context(), cases.SignRequest{
		CaseID: id, AgreementID: r.PathValue("aid"), Actor: c.actor, TextHash: hash,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	h.announceAgreement(a)
	writeJSON(w, http.StatusOK, a)
}

// correctionRequest is the body of POST .../corrections.
type correctionRequest struct {
	Reason string `json:"reason"`
}

// correctAgreement starts a correction of a final agreement.
func (h *Handler) correctAgreement(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrCorrect)
	if !ok {
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req correctionRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	a, err := h.p.Cases.CorrectAgreement(r.Context(), cases.CorrectRequest{
		CaseID: id, AgreementID: r.PathValue("aid"), Actor: c.actor, Reason: req.Reason,
	})
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/cases/"+id+"/agreements/"+a.ID)
	writeJSON(w, http.StatusCreated, a)
}

// performanceRequest is the body of POST .../terms/{no}/performance.
type performanceRequest struct {
	Performed *bool  `json:"performed"`
	Note      string `json:"note,omitempty"`
}

// reportPerformance records whether a term was performed.
func (h *Handler) reportPerformance(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := h.agreementCaller(w, r, id, agrPerformance)
	if !ok {
		return
	}
	no, err := strconv.Atoi(r.PathValue("no"))
	if err != nil || no < 1 {
		writeProblem(w, cases.ENOTFOUND, "follow-up not found")
		return
	}
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	var req performanceRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	if req.Performed == nil {
		writeFieldProblem(w, cases.EINVALID, "performed", "performed is required: true or false")
		return
	}
	pr := cases.PerformanceRequest{CaseID: id, AgreementID: r.PathValue("aid"), TermNo: no, Performed: *req.Performed, Note: req.Note}
	if c.staff() {
		pr.Staff = c.p.actor()
	} else {
		pr.Actor = c.actor
	}
	f, err := h.p.Cases.ReportPerformance(r.Context(), pr)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// followUpsAnswer is the body of the follow-up lists.
type followUpsAnswer struct {
	Items []cases.FollowUp `json:"items"`
}

// caseFollowUps lists the follow-ups of a case's agreed terms.
func (h *Handler) caseFollowUps(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := h.agreementCaller(w, r, id, agrRead); !ok {
		return
	}
	list, err := h.p.Cases.FollowUps(r.Context(), cases.FollowUpFilter{CaseID: id}, r.URL.Query().Get("overdue") == "true")
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, followUpsAnswer{Items: list})
}

// followUpQuery names the query parameters of GET /api/v1/followups.
var followUpQuery = []string{"overdue", "institutionId", "mediatorId", "caseId", "limit"}

// listFollowUps is the mediators' list: with overdue=true, the terms not
// performed by their deadline, oldest deadline first.
func (h *Handler) listFollowUps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for name := range q {
		if !slices.Contains(followUpQuery, name) {
			writeFieldProblem(w, codeBadRequest, name, "unknown query parameter "+strconv.Quote(name)+"; known: "+strings.Join(followUpQuery, ", "))
			return
		}
	}
	f := cases.FollowUpFilter{InstitutionID: q.Get("institutionId"), MediatorID: q.Get("mediatorId"), CaseID: q.Get("caseId")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeFieldProblem(w, cases.EINVALID, "limit", "limit must be between 1 and 500")
			return
		}
		f.Limit = n
	}
	var overdue bool
	switch q.Get("overdue") {
	case "", "false":
	case "true":
		overdue = true
	default:
		writeFieldProblem(w, cases.EINVALID, "overdue", "overdue must be true or false")
		return
	}
	list, err := h.p.Cases.FollowUps(r.Context(), f, overdue)
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, followUpsAnswer{Items: list})
}

// auditHeads exports the head of every case's hash chain, with a digest
// over all of them.
func (h *Handler) auditHeads(w http.ResponseWriter, r *http.Request) {
	heads, err := h.p.Cases.Heads(r.Context())
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, heads)
}

// auditCase recomputes a case's hash chain and reports the first broken
// link.
func (h *Handler) auditCase(w http.ResponseWriter, r *http.Request) {
	rep, err := h.p.Cases.VerifyCase(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// confirmationResultRequest is the body of the court's or arbitration
// body's result webhook.
type confirmationResultRequest struct {
	CaseID string `json:"caseId"`
	// Result is confirmed or refused.
	Result string `json:"result"`
	// Reason is required for a refusal.
	Reason string `json:"reason,omitempty"`
	// Source names the sender, e.g. the court's system.
	Source string `json:"source"`
	// Reference is the sender's number for the decision.
	Reference string `json:"reference,omitempty"`
}

// confirmationResult records a court's or arbitration body's decision on
// a confirmation request. The body is signed like a case import. Sending
// the same decision again answers with the case as it is.
func (h *Handler) confirmationResult(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	if !h.validSignature(r.Header.Get(signatureHeader), b) {
		writeProblem(w, codeBadSignature, "the "+signatureHeader+" header must be sha256= and the HMAC-SHA256 of the body with the shared secret")
		return
	}
	var req confirmationResultRequest
	if !decodeStrict(w, b, &req) {
		return
	}
	to := cases.StateConfirmed
	switch req.Result {
	case "confirmed":
	case "refused":
		to = cases.StateConfirmationRefused
	default:
		writeFieldProblem(w, cases.EINVALID, "result", "result must be confirmed or refused")
		return
	}
	if strings.TrimSpace(req.Source) == "" || len(req.Source) > 64 {
		writeFieldProblem(w, cases.EINVALID, "source", "source is required (at most 64 characters)")
		return
	}
	tr := cases.TransitionRequest{To: to, Actor: "webhook:" + req.Source, Note: req.Reference,
		Payload: map[string]string{"source": req.Source, "reference": req.Reference}}
	if to == cases.StateConfirmationRefused {
		tr.Reason = req.Reason
	}
	c, err := h.p.Cases.Apply(r.Context(), req.CaseID, tr)
	if cases.ErrorCode(err) == cases.ETRANSITION {
		// A repeat of the decision already recorded is answered with the
		// case as it is.
		if cur, gerr := h.p.Cases.Case(r.Context(), req.CaseID); gerr == nil && cur.State == to {
			writeJSON(w, http.StatusOK, cur)
			return
		}
	}
	if err != nil {
		h.writeCaseError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// agreementAnnouncer is what the live rooms offer to hear of agreement
// changes (signaling.Server implements it).
type agreementAnnouncer interface {
	AgreementUpdated(caseID, agreementID string, revision int, textHash, visibleTo, status string)
}

// announceAgreement tells the case's open rooms that its agreement
// changed.
func (h *Handler) announceAgreement(a *cases.Agreement) {
	if n, ok := h.p.Rooms.(agreementAnnouncer); ok && a != nil {
		n.AgreementUpdated(a.CaseID, a.ID, a.Revision, a.TextHash, a.VisibleTo, a.Status)
	}
}
