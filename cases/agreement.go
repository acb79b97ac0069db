package cases

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/concord-odr/concord/cases/calendar"
)

// A mediation agreement (调解协议) records how a dispute was settled. Its
// content follows what the People's Mediation Law (art. 29) asks of one:
// the parties' basic information, the main facts and the disputed
// matters (with each party's responsibility), the agreed terms and how
// and by when they are performed, and the mediator and the institution.
//
// Its life: the mediator drafts it in the room; every text change makes
// a new revision and voids the confirmations given before it; each party
// confirms the exact text (its SHA-256) on its own device; the mediator
// signs last, and the agreement becomes final and immutable, in force
// from the signature. A later correction is a new agreement of the same
// case with the next number, referring to the one it corrects; when it is
// signed the old one is superseded (its content and signatures stay as
// they were).

// Agreement statuses.
const (
	AgreementDraft      = "draft"
	AgreementFinal      = "final"
	AgreementSuperseded = "superseded"
)

// VisibleToAll is the visibility of a draft prepared in joint session.
const VisibleToAll = "all"

// AgreementParty is one party's basic information in an agreement.
type AgreementParty struct {
	Side string `json:"side"` // applicant or respondent
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"` // person or organisation
	// IDNumber is a person's identity document number or an
	// organisation's unified social credit code.
	IDNumber string `json:"idNumber,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Address  string `json:"address,omitempty"`
	// Representative is an organisation's legal representative or a
	// party's agent.
	Representative string `json:"representative,omitempty"`
}

// AgreementTerm is one agreed term and how it is performed.
type AgreementTerm struct {
	No   int    `json:"no"` // 1, 2, ... in order; assigned on save
	Text string `json:"text"`
	// Obligor is the side that performs the term.
	Obligor     string `json:"obligor,omitempty"`
	AmountCents int64  `json:"amountCents,omitempty"`
	Method      string `json:"method,omitempty"`   // e.g. bank transfer, return of goods
	Deadline    string `json:"deadline,omitempty"` // YYYY-MM-DD, China time
}

// AgreementContent is what the mediator drafts.
type AgreementContent struct {
	Parties         []AgreementParty `json:"parties"`
	Facts           string           `json:"facts"`
	DisputedMatters string           `json:"disputedMatters"`
	// Responsibilities states each party's responsibility (optional).
	Responsibilities string          `json:"responsibilities,omitempty"`
	Terms            []AgreementTerm `json:"terms"`
	Mediator         string          `json:"mediator"`    // the mediator's name
	Institution      string          `json:"institution"` // the institution's name
}

// AgreementConfirmation is one party's confirmation of an exact text.
type AgreementConfirmation struct {
	ParticipantID string    `json:"participantId"`
	Name          string    `json:"name"`
	Side          string    `json:"side"`
	SessionID     string    `json:"sessionId"`
	At            time.Time `json:"at"`
	Revision      int       `json:"revision"`
	TextHash      string    `json:"textHash"`
}

// AgreementSignature is the mediator's signature, which makes an
// agreement final.
type AgreementSignature struct {
	ParticipantID string    `json:"participantId"`
	Name          string    `json:"name"`
	SessionID     string    `json:"sessionId"`
	At            time.Time `json:"at"`
	TextHash      string    `json:"textHash"`
}

// Agreement is one version of a case's mediation agreement.
type Agreement struct {
	ID         string `json:"id"`
	CaseID     string `json:"caseId"`
	CaseNumber string `json:"caseNumber"`
	// Number is 1 for a case's first agreement; a correction takes the
	// next one.
	Number       int    `json:"number"`
	Supersedes   string `json:"supersedes,omitempty"`   // the agreement this one corrects
	SupersededBy string `json:"supersededBy,omitempty"` // the correction that replaced it
	Status       string `json:"status"`
	// VisibleTo is "all", or the one side that may see a draft prepared
	// in a caucus with it. Only a draft visible to all can be confirmed.
	VisibleTo string           `json:"visibleTo"`
	Content   AgreementContent `json:"content"`
	// Revision counts the text changes of the draft.
	Revision int `json:"revision"`
	// Text is the exact agreement text that parties confirm and the
	// mediator signs; TextHash is its SHA-256, in hex.
	Text          string                  `json:"text"`
	TextHash      string                  `json:"textHash"`
	Confirmations []AgreementConfirmation `json:"confirmations"`
	Signature     *AgreementSignature     `json:"signature,omitempty"`
	// EffectiveAt is when the agreement took effect: the signature.
	EffectiveAt *time.Time `json:"effectiveAt,omitempty"`
	// CorrectionReason says why this version corrects the one before.
	CorrectionReason string    `json:"correctionReason,omitempty"`
	DraftedBy        string    `json:"draftedBy"`
	SessionID        string    `json:"sessionId"` // where it was drafted
	Version          int64     `json:"version"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

// AgreementRef is what a case keeps of its agreement in force.
type AgreementRef struct {
	ID          string    `json:"id"`
	Number      int       `json:"number"`
	TextHash    string    `json:"textHash"`
	EffectiveAt time.Time `json:"effectiveAt"`
}

// VisibleToSide reports whether a party of side may see a.
func (a *Agreement) VisibleToSide(side string) bool {
	return a.Status != AgreementDraft || a.VisibleTo == VisibleToAll || a.VisibleTo == side
}

// ConfirmedBy returns the confirmations of a's current text by side.
func (a *Agreement) ConfirmedBy(side string) []AgreementConfirmation {
	var out []AgreementConfirmation
	for _, c := range a.Confirmations {
		if c.Side == side && c.TextHash == a.TextHash {
			out = append(out, c)
		}
	}
	return out
}

// TextHash returns the hex SHA-256 of an agreement text.
func TextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// Limits of an agreement's content.
const (
	maxAgreementParties = 10
	maxAgreementTerms   = 50
)

// validateContent checks the fields of a draft; a draft may be
// incomplete (see complete).
func validateContent(c *AgreementContent) error {
	if len(c.Parties) > maxAgreementParties {
		return FieldErrorf("content.parties", "at most %d parties", maxAgreementParties)
	}
	for i := range c.Parties {
		p := &c.Parties[i]
		switch p.Side {
		case SideApplicant, SideRespondent:
		default:
			return FieldErrorf("content.parties.side", "a party's side is applicant or respondent, not %q", p.Side)
		}
		switch p.Kind {
		case "", "person", "organisation":
		default:
			return FieldErrorf("content.parties.kind", "a party's kind is person or organisation")
		}
		for _, f := range []struct {
			name, v string
			max     int
		}{
			{"name", p.Name, 200}, {"idNumber", p.IDNumber, 64}, {"phone", p.Phone, 40},
			{"address", p.Address, 500}, {"representative", p.Representative, 200},
		} {
			if err := validText("content.parties."+f.name, f.v, f.max, false); err != nil {
				return err
			}
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"facts", c.Facts, 10000}, {"disputedMatters", c.DisputedMatters, 5000},
		{"responsibilities", c.Responsibilities, 5000},
		{"mediator", c.Mediator, 200}, {"institution", c.Institution, 200},
	} {
		if err := validText("content."+f.name, f.v, f.max, false); err != nil {
			return err
		}
	}
	if len(c.Terms) > maxAgreementTerms {
		return FieldErrorf("content.terms", "at most %d terms", maxAgreementTerms)
	}
	for i := range c.Terms {
		t := &c.Terms[i]
		t.No = i + 1
		if err := validText("content.terms.text", t.Text, 2000, false); err != nil {
			return err
		}
		if err := validText("content.terms.method", t.Method, 200, false); err != nil {
			return err
		}
		switch t.Obligor {
		case "", SideApplicant, SideRespondent:
		default:
			return FieldErrorf("content.terms.obligor", "a term's obligor is applicant or respondent")
		}
		if t.AmountCents < 0 || t.AmountCents > 1e13 {
			return FieldErrorf("content.terms.amountCents", "a term's amount must be between 0 and 100 billion yuan")
		}
		if t.Deadline != "" {
			if _, err := calendar.ParseDate(t.Deadline); err != nil {
				return FieldErrorf("content.terms.deadline", "term %d: deadline: %v", t.No, err)
			}
		}
	}
	return nil
}

// complete checks that content has everything a party confirms and the
// mediator signs.
func complete(c *AgreementContent) error {
	sides := map[string]bool{}
	for _, p := range c.Parties {
		if strings.TrimSpace(p.Name) == "" {
			return FieldErrorf("content.parties.name", "every party needs a name")
		}
		sides[p.Side] = true
	}
	if !sides[SideApplicant] || !sides[SideRespondent] {
		return FieldErrorf("content.parties", "the agreement needs the applicant and the respondent")
	}
	for field, v := range map[string]string{
		"content.facts": c.Facts, "content.disputedMatters": c.DisputedMatters,
		"content.mediator": c.Mediator, "content.institution": c.Institution,
	} {
		if strings.TrimSpace(v) == "" {
			return FieldErrorf(field, "%s is required before the agreement is confirmed", strings.TrimPrefix(field, "content."))
		}
	}
	if len(c.Terms) == 0 {
		return FieldErrorf("content.terms", "the agreement needs at least one agreed term")
	}
	for _, t := range c.Terms {
		if strings.TrimSpace(t.Text) == "" {
			return FieldErrorf("content.terms.text", "term %d has no text", t.No)
		}
		if (t.AmountCents > 0 || t.Deadline != "") && t.Obligor == "" {
			return FieldErrorf("content.terms.obligor", "term %d has an amount or a deadline: say which side performs it", t.No)
		}
	}
	return nil
}

// RenderAgreementText returns the exact text of an agreement: what the
// parties confirm, the mediator signs, and the PDF shows. It depends only
// on its arguments.
func RenderAgreementText(caseNumber string, number int, supersedesNumber int, c *AgreementContent) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("人民调解协议书")
	line("")
	if supersedesNumber > 0 {
		line("编号：%s-%d（更正第%d版）", caseNumber, number, supersedesNumber)
	} else {
		line("编号：%s-%d", caseNumber, number)
	}
	line("")
	line("一、当事人基本情况")
	for _, side := range []string{SideApplicant, SideRespondent} {
		for _, p := range c.Parties {
			if p.Side != side {
				continue
			}
			label := "申请人"
			if side == SideRespondent {
				label = "被申请人"
			}
			parts := []string{label + "：" + p.Name}
			switch p.Kind {
			case "person":
				parts = append(parts, "自然人")
			case "organisation":
				parts = append(parts, "组织")
			}
			if p.IDNumber != "" {
				if p.Kind == "organisation" {
					parts = append(parts, "统一社会信用代码："+p.IDNumber)
				} else {
					parts = append(parts, "身份证件号码："+p.IDNumber)
				}
			}
			if p.Address != "" {
				parts = append(parts, "住所："+p.Address)
			}
			if p.Phone != "" {
				parts = append(parts, "联系电话："+p.Phone)
			}
			if p.Representative != "" {
				parts = append(parts, "代表人或代理人："+p.Representative)
			}
			line("%s", strings.Join(parts, "；"))
		}
	}
	line("")
	line("二、纠纷的主要事实")
	line("%s", c.Facts)
	line("")
	line("三、争议事项")
	line("%s", c.DisputedMatters)
	if c.Responsibilities != "" {
		line("")
		line("各方当事人的责任：")
		line("%s", c.Responsibilities)
	}
	line("")
	line("四、经调解，各方当事人自愿达成如下协议")
	for _, t := range c.Terms {
		line("%s、%s", chineseNumeral(t.No), t.Text)
		var perf []string
		if t.Obligor != "" {
			who := "申请人"
			if t.Obligor == SideRespondent {
				who = "被申请人"
			}
			perf = append(perf, "履行方："+who)
		}
		if t.AmountCents > 0 {
			perf = append(perf, "金额：人民币"+YuanString(t.AmountCents)+"元")
		}
		if t.Method != "" {
			perf = append(perf, "履行方式："+t.Method)
		}
		if t.Deadline != "" {
			perf = append(perf, "履行期限："+t.Deadline+"前")
		}
		if len(perf) > 0 {
			line("（%s）", strings.Join(perf, "；"))
		}
	}
	line("")
	line("五、本协议经各方当事人确认、人民调解员签名并加盖调解组织印章后生效。当事人应当按照约定履行。经双方当事人共同申请，可以自协议生效之日起三十日内向人民法院申请司法确认。")
	line("")
	line("人民调解员：%s", c.Mediator)
	line("调解组织：%s", c.Institution)
	return b.String()
}

// YuanString formats an amount in cents as yuan with two decimals.
func YuanString(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}

// chineseNumeral writes 1..99 in Chinese numerals (一, 十二, 二十三).
func chineseNumeral(n int) string {
	digits := []string{"零", "一", "二", "三", "四", "五", "六", "七", "八", "九"}
	switch {
	case n <= 0 || n >= 100:
		return fmt.Sprint(n)
	case n < 10:
		return digits[n]
	case n == 10:
		return "十"
	case n < 20:
		return "十" + digits[n%10]
	case n%10 == 0:
		return digits[n/10] + "十"
	default:
		return digits[n/10] + "十" + digits[n%10]
	}
}
