package cases

import (
	"context"
	"time"
)

// StaffRole is what a staff account may do. Every role but the platform
// admin is bound to an institution or to an ODR enterprise.
type StaffRole string

// Staff roles.
const (
	// StaffPlatformAdmin runs the platform: every institution and case.
	StaffPlatformAdmin StaffRole = "platform_admin"
	// StaffInstitutionAdmin administers an institution and the ones below
	// it: their cases, mediators and staff.
	StaffInstitutionAdmin StaffRole = "institution_admin"
	// StaffMediator works the cases of one institution.
	StaffMediator StaffRole = "mediator"
	// StaffMerchantAgent answers, for one ODR enterprise, the complaints
	// against it.
	StaffMerchantAgent StaffRole = "merchant_agent"
	// StaffKiosk is the device of a community station's remote mediation
	// room: the station's staff start walk-in sessions on it, and it joins
	// them as the walk-in party's device. It does nothing else.
	StaffKiosk StaffRole = "kiosk"
)

// StaffRoles lists every staff role.
func StaffRoles() []StaffRole {
	return []StaffRole{StaffPlatformAdmin, StaffInstitutionAdmin, StaffMediator, StaffMerchantAgent, StaffKiosk}
}

// Valid reports whether r is a known role.
func (r StaffRole) Valid() bool {
	for _, x := range StaffRoles() {
		if x == r {
			return true
		}
	}
	return false
}

// Account statuses.
const (
	AccountActive   = "active"
	AccountDisabled = "disabled"
)

// Account is a staff member's login.
type Account struct {
	ID    string    `json:"id"`
	Login string    `json:"login"` // lower case, unique
	Name  string    `json:"name"`
	Role  StaffRole `json:"role"`
	// InstitutionID binds an institution admin, a mediator or a kiosk (to
	// a community station).
	InstitutionID string `json:"institutionId,omitempty"`
	// MediatorID links a mediator's account to its mediator record (of the
	// same institution): who the account is on the instant-mediation
	// queue. Optional.
	MediatorID string `json:"mediatorId,omitempty"`
	// EnterpriseCode binds a merchant agent: the credit code of its ODR
	// enterprise.
	EnterpriseCode string `json:"enterpriseCode,omitempty"`
	Status         string `json:"status"` // active, disabled
	// PasswordHash is the encoded argon2id hash, parameters included. It
	// is never sent to a client.
	PasswordHash string `json:"-"`
	// TokenVersion changes whenever the account's access tokens must stop
	// working: a password change or reset, or the account disabled.
	TokenVersion      int64     `json:"-"`
	PasswordChangedAt time.Time `json:"passwordChangedAt"`
	Version           int64     `json:"version"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
}

// AccountFilter selects accounts for Tx.Accounts. Zero fields select
// everything.
type AccountFilter struct {
	// InstitutionIDs, when not nil, selects the accounts bound to one of
	// them (an empty, non-nil list selects none).
	InstitutionIDs []string
	Role           StaffRole
	EnterpriseCode string
}

// StaffSession is one login of an account: the family of refresh tokens
// that rotate from it. Revoking it ends every token of the family.
type StaffSession struct {
	ID         string    `json:"id"`
	AccountID  string    `json:"accountId"`
	CreatedAt  time.Time `json:"createdAt"`
	LastUsedAt time.Time `json:"lastUsedAt"`
	// ExpiresAt is the absolute end of the login, however often it is
	// refreshed.
	ExpiresAt    time.Time  `json:"expiresAt"`
	RevokedAt    *time.Time `json:"revokedAt,omitempty"`
	RevokeReason string     `json:"revokeReason,omitempty"`
}

// Active reports whether the session may still be used at now.
func (s *StaffSession) Active(now time.Time) bool {
	return s.RevokedAt == nil && now.Before(s.ExpiresAt)
}

// RefreshToken is one refresh token of a staff session, known by the
// hash of its secret. A refresh spends it (RotatedAt) and issues the
// next; presenting a spent one again is a reuse, which ends the session.
type RefreshToken struct {
	Hash      string     `json:"hash"`
	SessionID string     `json:"sessionId"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	RotatedAt *time.Time `json:"rotatedAt,omitempty"`
}

// JoinLink is a short join link: a random code, kept only as its hash,
// that exchanges for a join token of one participant of one session. Its
// ID is the jti of every token it exchanges for, so revoking that jti
// revokes the link too.
type JoinLink struct {
	ID            string    `json:"id"`
	CodeHash      string    `json:"-"`
	CaseID        string    `json:"caseId"`
	SessionID     string    `json:"sessionId"`
	ParticipantID string    `json:"participantId"`
	CreatedBy     string    `json:"createdBy"`
	CreatedAt     time.Time `json:"createdAt"`
	ExpiresAt     time.Time `json:"expiresAt"`
}

// Revocation kinds: what a revocation covers.
const (
	// RevokeToken covers one jti: one short link and the tokens it
	// exchanged for, or one full join token.
	RevokeToken = "token"
	// RevokeParticipant covers every link and token of one participant of
	// one session.
	RevokeParticipant = "participant"
	// RevokeSession covers every link and token of a session.
	RevokeSession = "session"
)

// Revocation refuses join links and tokens before they expire.
type Revocation struct {
	// Key identifies what is revoked; see RevocationKey. Revoking the
	// same thing twice keeps the first record.
	Key           string    `json:"-"`
	Kind          string    `json:"kind"`
	JTI           string    `json:"jti,omitempty"`
	CaseID        string    `json:"caseId,omitempty"`
	SessionID     string    `json:"sessionId,omitempty"`
	ParticipantID string    `json:"participantId,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Actor         string    `json:"actor"`
	RevokedAt     time.Time `json:"revokedAt"`
}

// RevocationKey returns the key of a revocation of the given kind.
func RevocationKey(kind, jti, sessionID, participantID string) string {
	switch kind {
	case RevokeToken:
		return "jti:" + jti
	case RevokeParticipant:
		return "participant:" + sessionID + "/" + participantID
	case RevokeSession:
		return "session:" + sessionID
	}
	return ""
}

// Notification channels: how a message reaches a party.
const (
	NotifySMS    = "sms"
	NotifyWeChat = "wechat"
)

// Outbox message statuses.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed" // given up on; kept for the operator to see
)

// OutboxMessage is a notification waiting to be delivered, or the record
// of one that was. It is written in the transaction that decided to send
// it, so that an outage of the gateway loses nothing.
type OutboxMessage struct {
	ID      string `json:"id"`
	Channel string `json:"channel"` // sms, wechat
	To      string `json:"to"`
	Text    string `json:"text"`
	// CaseID is the case the message is about, if any.
	CaseID        string     `json:"caseId,omitempty"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"nextAttemptAt"`
	LastError     string     `json:"lastError,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	SentAt        *time.Time `json:"sentAt,omitempty"`
}

// InstitutionSubtree returns id and the ids of every institution below
// it. An unknown id is ENOTFOUND.
func (s *Service) InstitutionSubtree(ctx context.Context, id string) ([]string, error) {
	var list []Institution
	err := s.store.View(ctx, func(tx Tx) error {
		if _, err := tx.Institution(ctx, id); err != nil {
			return err
		}
		var err error
		list, err = tx.Institutions(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return Subtree(list, id), nil
}

// Subtree returns root and the ids of the institutions of list below it,
// root first.
func Subtree(list []Institution, root string) []string {
	children := map[string][]string{}
	for _, inst := range list {
		if inst.ParentID != "" && inst.ParentID != inst.ID {
			children[inst.ParentID] = append(children[inst.ParentID], inst.ID)
		}
	}
	out := []string{root}
	seen := map[string]bool{root: true}
	for i := 0; i < len(out); i++ {
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}
