package agreementpdf_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/concord-odr/concord/cases"
	"github.com/concord-odr/concord/cases/agreementpdf"
)

func sample() *cases.Agreement {
	content := cases.AgreementContent{
		Parties: []cases.AgreementParty{
			{Side: cases.SideApplicant, Name: "李华", Kind: "person", Phone: "+86 138 0000 0000"},
			{Side: cases.SideRespondent, Name: "上海某某电子商务有限公司", Kind: "organisation", IDNumber: "91310000MA1FL0XX0X"},
		},
		Facts:           "申请人于2025年3月1日在被申请人网店购买电热水壶一只，收货后无法加热，要求退货退款，被申请人未予答复。",
		DisputedMatters: "被申请人是否应当退还货款129.90元。",
		Terms: []cases.AgreementTerm{
			{No: 1, Text: "被申请人向申请人退还货款", Obligor: cases.SideRespondent, AmountCents: 12990, Method: "原支付渠道退款", Deadline: "2025-03-21"},
			{No: 2, Text: "双方就本纠纷再无其他争议"},
		},
		Mediator:    "王调解员",
		Institution: "徐汇区人民调解委员会",
	}
	text := cases.RenderAgreementText("2025-0310-000001", 1, 0, &content)
	at := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)
	return &cases.Agreement{
		ID: "agr_x", CaseID: "case_x", CaseNumber: "2025-0310-000001", Number: 1, Status: cases.AgreementFinal,
		Content: content, Revision: 2, Text: text, TextHash: cases.TextHash(text), VisibleTo: cases.VisibleToAll,
		Confirmations: []cases.AgreementConfirmation{
			{ParticipantID: "p_a", Name: "李华", Side: cases.SideApplicant, SessionID: "s_1", At: at, Revision: 2, TextHash: cases.TextHash(text)},
		},
		Signature:   &cases.AgreementSignature{ParticipantID: "p_m", Name: "王调解员", SessionID: "s_1", At: at.Add(time.Minute), TextHash: cases.TextHash(text)},
		EffectiveAt: &at, UpdatedAt: at,
	}
}

// TestRender renders an agreement and, when poppler's pdftotext is
// installed, reads the Chinese text back out of the PDF: the glyphs are
// there and mapped to the right characters.
func TestRender(t *testing.T) {
	a := sample()
	var buf bytes.Buffer
	if err := agreementpdf.Render(&buf, a); err != nil {
		t.Fatalf("Render: %v", err)
	}
	b := buf.Bytes()
	if !bytes.HasPrefix(b, []byte("%PDF-")) || !bytes.Contains(b, []byte("FontFile2")) || len(b) > 1<<20 {
		t.Fatalf("not a PDF with an embedded TrueType subset (%d bytes)", len(b))
	}
	tool, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Log("pdftotext not installed; the text was not read back")
		}
		t.Skip("pdftotext not installed")
	}
	path := filepath.Join(t.TempDir(), "a.pdf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "-enc", "UTF-8", path, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	text := strings.Join(strings.Fields(string(out)), "")
	for _, want := range []string{"人民调解协议书", "上海某某电子商务有限公司", "人民币129.90元", "徐汇区人民调解委员会", "王调解员", a.TextHash[:16]} {
		if !strings.Contains(text, want) {
			t.Errorf("PDF text lacks %q:\n%s", want, out)
		}
	}
}
