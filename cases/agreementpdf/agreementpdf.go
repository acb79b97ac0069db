// Package agreementpdf renders a mediation agreement as a PDF, with its
// Chinese text in an embedded CJK font.
//
// The font is WenQuanYi Micro Hei (文泉驿微米黑), the file Debian's
// fonts-wqy-microhei package ships (wqy-microhei.ttc; Apache License 2.0
// or GPL-3+ with the font exception, see fonts/wqy-microhei.COPYRIGHT).
// Derived from Droid Sans Fallback and Droid Sans, it covers the CJK
// Unified Ideographs of GB 2312 and beyond as well as Latin, digits and
// punctuation; the PDF embeds only the glyphs it uses. The page shows the agreement's exact text, the one
// whose SHA-256 the parties confirmed, followed by the confirmations and
// the mediator's signature.
package agreementpdf

import (
	_ "embed"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"

	"github.com/concord-odr/concord/cases"
)

//go:embed fonts/wqy-microhei.ttc
var collection []byte

const family = "wqy-microhei"

// zone is China Standard Time, in which the agreement's dates are shown.
var zone = time.FixedZone("CST", 8*3600)

func stamp(t time.Time) string {
	return t.In(zone).Format("2006-01-02 15:04:05") + "（北京时间）"
}

// Render writes a as a PDF to w. A draft is marked as one on every page.
func Render(w io.Writer, a *cases.Agreement) error {
	font, err := firstFont(collection)
	if err != nil {
		return fmt.Errorf("agreementpdf: font: %w", err)
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(true)
	pdf.AddUTF8FontFromBytes(family, "", font)
	pdf.SetTitle(fmt.Sprintf("人民调解协议书 %s-%d", a.CaseNumber, a.Number), true)
	pdf.SetCreator("Concord", true)
	created := a.UpdatedAt
	if a.EffectiveAt != nil {
		created = *a.EffectiveAt
	}
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetMargins(20, 20, 20)
	pdf.SetAutoPageBreak(true, 20)
	pdf.AliasNbPages("{nb}")
	draft := a.Status == cases.AgreementDraft
	pdf.SetHeaderFunc(func() {
		if draft {
			pdf.SetFont(family, "", 10)
			pdf.SetTextColor(200, 0, 0)
			pdf.CellFormat(0, 6, "草稿 DRAFT — 未生效，仅供核对", "", 1, "R", false, 0, "")
			pdf.SetTextColor(0, 0, 0)
		}
	})
	pdf.SetFooterFunc(func() {
		pdf.SetY(-15)
		pdf.SetFont(family, "", 8)
		pdf.SetTextColor(100, 100, 100)
		pdf.CellFormat(0, 5, fmt.Sprintf("文本 SHA-256：%s    第 %d/{nb} 页", a.TextHash, pdf.PageNo()), "", 0, "C", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.AddPage()

	lines := strings.Split(strings.TrimRight(a.Text, "\n"), "\n")
	for i, line := range lines {
		switch {
		case i == 0: // the title
			pdf.SetFont(family, "", 20)
			pdf.CellFormat(0, 14, line, "", 1, "C", false, 0, "")
		case line == "":
			pdf.Ln(3)
		default:
			pdf.SetFont(family, "", 11.5)
			pdf.MultiCell(0, 7, line, "", "L", false)
		}
	}

	pdf.Ln(6)
	pdf.SetFont(family, "", 12)
	pdf.CellFormat(0, 8, "确认与签署", "B", 1, "L", false, 0, "")
	pdf.SetFont(family, "", 10)
	if len(a.Confirmations) == 0 {
		pdf.MultiCell(0, 6, "尚无当事人确认。", "", "L", false)
	}
	for _, c := range a.Confirmations {
		side := "申请人"
		if c.Side == cases.SideRespondent {
			side = "被申请人"
		}
		pdf.MultiCell(0, 6, fmt.Sprintf("%s %s 于 %s 在线确认本协议文本（第%d稿，会话 %s，文本 SHA-256 %s）。",
			side, c.Name, stamp(c.At), c.Revision, c.SessionID, c.TextHash), "", "L", false)
	}
	if s := a.Signature; s != nil {
		pdf.MultiCell(0, 6, fmt.Sprintf("人民调解员 %s 于 %s 签署（会话 %s）。", s.Name, stamp(s.At), s.SessionID), "", "L", false)
	}
	if a.EffectiveAt != nil {
		pdf.MultiCell(0, 6, "本协议自 "+stamp(*a.EffectiveAt)+" 起生效。", "", "L", false)
	}
	if a.Supersedes != "" {
		pdf.MultiCell(0, 6, fmt.Sprintf("本协议更正协议 %s；更正原因：%s", a.Supersedes, a.CorrectionReason), "", "L", false)
	}
	if a.Status == cases.AgreementSuperseded {
		pdf.SetTextColor(200, 0, 0)
		pdf.MultiCell(0, 6, "本协议已被更正协议 "+a.SupersededBy+" 取代。", "", "L", false)
		pdf.SetTextColor(0, 0, 0)
	}
	return pdf.Output(w)
}
