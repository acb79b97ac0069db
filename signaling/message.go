package signaling

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/concord-odr/concord/media"
	"github.com/concord-odr/concord/rooms"
)

// Message types (see PROTOCOL.md).
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypeLeave             = "leave"
	TypeParticipantJoined = "participant_joined"
	TypeParticipantLeft   = "participant_left"
	TypeSessionEnded      = "session_ended"
	TypeError             = "error"

	// The room: lobby, consent, modes and the mediator's controls.
	TypeRoom              = "room"
	TypeConsent           = "consent"
	TypeAdmit             = "admit"
	TypeAdmitAll          = "admit_all"
	TypeRemove            = "remove"
	TypeCheckIdentity     = "check_identity"
	TypeIdentityChecked   = "identity_checked"
	TypeSetMode           = "set_mode"
	TypeLetIntoCaucus     = "let_into_caucus"
	TypeAttachInterpreter = "attach_interpreter"
	TypeMute              = "mute"
	TypeUnmute            = "unmute"
	TypeAskUnmute         = "ask_unmute"
	TypeUnmuteRequested   = "unmute_requested"
	TypeLock              = "lock"
	TypeChat              = "chat"
	TypeNote              = "note"
	TypeAgreementUpdated  = "agreement_updated"
	TypeActiveSpeaker     = "active_speaker"
	TypeRestartICE        = "restart_ice"
	TypeVideoQuality      = "video_quality"
)

// maxChatRunes bounds one chat message or note.
const maxChatRunes = 2000

// An offer's screenTracks lists at most maxScreenTracks track ids of 1 to
// maxTrackIDLen printable ASCII characters.
const (
	maxScreenTracks = 4
	maxTrackIDLen   = 64
)

// Error codes (see PROTOCOL.md). They are stable.
const (
	CodeBadMessage        = "bad_message"
	CodeJoinRequired      = "join_required"
	CodeAlreadyJoined     = "already_joined"
	CodeInvalidToken      = "invalid_token"
	CodeTokenExpired      = "token_expired"
	CodeNotFound          = "not_found"
	CodeSessionEnded      = "session_ended"
	CodeReplaced          = "replaced"
	CodeNegotiationFailed = "negotiation_failed"
	CodeRateLimited       = "rate_limited"
	CodeShuttingDown      = "shutting_down"
	CodeNotAllowed        = "not_allowed"
	CodeRoomLocked        = "room_locked"
	CodeRemoved           = "removed"
	CodeLinkRevoked       = "link_revoked"
	CodeNoConsent         = "no_consent"
	CodeInternal          = "internal"
	// CodeRoomMoved: the session's room runs on another node now; the
	// client reconnects and is routed there.
	CodeRoomMoved = "room_moved"
	// CodeUnavailable: the node running the session's room, or the Redis
	// that says which it is, cannot be reached; the client retries.
	CodeUnavailable = "unavailable"
)

// inbound is a message from a client.
type inbound struct {
	Type      string               `json:"type"`
	Token     string               `json:"token,omitempty"`
	Resume    bool                 `json:"resume,omitempty"`
	PC        string               `json:"pc,omitempty"`
	SDP       string               `json:"sdp,omitempty"`
	Candidate *media.CandidateInit `json:"candidate,omitempty"`
	// ScreenTracks, on an offer, lists its screen-share track ids; nil
	// (absent) keeps the previous list.
	ScreenTracks []string `json:"screenTracks,omitempty"`

	ParticipantID string      `json:"participantId,omitempty"`
	Mode          *rooms.Mode `json:"mode,omitempty"`
	Side          string      `json:"side,omitempty"`
	On            *bool       `json:"on,omitempty"`
	Allow         *bool       `json:"allow,omitempty"`
	Locked        *bool       `json:"locked,omitempty"`
	Text          string      `json:"text,omitempty"`
	Layer         *int        `json:"layer,omitempty"`
}

// Participant is a participant as clients see it.
type Participant struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Role   string `json:"role"`
	Side   string `json:"side"`
	Online bool   `json:"online"`
}

// SessionInfo describes the session a client joined.
type SessionInfo struct {
	ID     string `json:"id"`
	CaseID string `json:"caseId"`
	Status string `json:"status"`
}

// ICEServer is an RTCIceServer as browsers take it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// outbound is a message to a client.
type outbound struct {
	Type          string               `json:"type"`
	PC            string               `json:"pc,omitempty"`
	SDP           string               `json:"sdp,omitempty"`
	Candidate     *media.CandidateInit `json:"candidate,omitempty"`
	Self          *Participant         `json:"self,omitempty"`
	Participants  []Participant        `json:"participants,omitempty"`
	Session       *SessionInfo         `json:"session,omitempty"`
	ICEServers    []ICEServer          `json:"iceServers,omitempty"`
	Participant   *Participant         `json:"participant,omitempty"`
	ParticipantID string               `json:"participantId,omitempty"`
	Resumed       bool                 `json:"resumed,omitempty"`
	Result        string               `json:"result,omitempty"`
	Code          string               `json:"code,omitempty"`
	Message       string               `json:"message,omitempty"`
	Fatal         bool                 `json:"fatal,omitempty"`
	Room          *RoomState           `json:"room,omitempty"`
	Agreement     *AgreementInfo       `json:"agreement,omitempty"`
	From          string               `json:"from,omitempty"`
	Text          string               `json:"text,omitempty"`
	At            *time.Time           `json:"at,omitempty"`
}

// RoomState is the room as one participant may see it.
type RoomState struct {
	rooms.View
	StartedAt *time.Time `json:"startedAt,omitempty"`
	Notes     []Note     `json:"notes,omitempty"` // mediators only
}

// AgreementInfo announces a changed agreement; clients fetch its text
// through the API.
type AgreementInfo struct {
	ID        string `json:"id"`
	Revision  int    `json:"revision"`
	TextHash  string `json:"textHash"`
	VisibleTo string `json:"visibleTo"`
	Status    string `json:"status"`
}

// Note is a mediator's private note.
type Note struct {
	From string    `json:"from"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// protocolError is an error to report to the client with a code.
type protocolError struct {
	code  string
	msg   string
	fatal bool
}

func (e *protocolError) Error() string { return e.code + ": " + e.msg }

func errorf(code string, fatal bool, format string, args ...any) *protocolError {
	return &protocolError{code: code, msg: fmt.Sprintf(format, args...), fatal: fatal}
}

// decode parses and validates one client message.
func decode(data []byte) (*inbound, error) {
	var m inbound
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errorf(CodeBadMessage, false, "message is not valid JSON")
	}
	switch m.Type {
	case TypeJoin:
		if m.Token == "" {
			return nil, errorf(CodeBadMessage, false, "join needs a token")
		}
	case TypeOffer:
		if m.PC != media.PCPublish || m.SDP == "" {
			return nil, errorf(CodeBadMessage, false, `offer needs pc "pub" and an sdp`)
		}
		if !validScreenTracks(m.ScreenTracks) {
			return nil, errorf(CodeBadMessage, false, "screenTracks needs at most %d track ids of 1 to %d printable ASCII characters", maxScreenTracks, maxTrackIDLen)
		}
	case TypeAnswer:
		if m.PC != media.PCSubscribe || m.SDP == "" {
			return nil, errorf(CodeBadMessage, false, `answer needs pc "sub" and an sdp`)
		}
	case TypeCandidate:
		if (m.PC != media.PCPublish && m.PC != media.PCSubscribe) || m.Candidate == nil {
			return nil, errorf(CodeBadMessage, false, `candidate needs pc "pub" or "sub" and a candidate`)
		}
	case TypeLeave, TypeConsent, TypeAdmitAll, TypeUnmute, TypeRestartICE:
	case TypeVideoQuality:
		if m.ParticipantID == "" || m.Layer == nil || *m.Layer < 0 || *m.Layer > 2 {
			return nil, errorf(CodeBadMessage, false, "video_quality needs a participantId and a layer 0, 1 or 2")
		}
	case TypeAdmit, TypeRemove, TypeIdentityChecked, TypeMute, TypeAskUnmute:
		if m.ParticipantID == "" {
			return nil, errorf(CodeBadMessage, false, "%s needs a participantId", m.Type)
		}
	case TypeCheckIdentity, TypeLetIntoCaucus:
		if m.ParticipantID == "" || (m.On == nil && m.Allow == nil) {
			return nil, errorf(CodeBadMessage, false, "%s needs a participantId and on/allow", m.Type)
		}
	case TypeAttachInterpreter:
		if m.ParticipantID == "" || m.Side == "" {
			return nil, errorf(CodeBadMessage, false, "attach_interpreter needs a participantId and a side")
		}
	case TypeSetMode:
		if m.Mode == nil {
			return nil, errorf(CodeBadMessage, false, "set_mode needs a mode")
		}
	case TypeLock:
		if m.Locked == nil {
			return nil, errorf(CodeBadMessage, false, "lock needs locked: true or false")
		}
	case TypeChat, TypeNote:
		n := utf8.RuneCountInString(m.Text)
		if n == 0 || n > maxChatRunes || !utf8.ValidString(m.Text) {
			return nil, errorf(CodeBadMessage, false, "%s needs a text of 1 to %d characters", m.Type, maxChatRunes)
		}
	case "":
		return nil, errorf(CodeBadMessage, false, "message has no type")
	default:
		return nil, errorf(CodeBadMessage, false, "unknown message type %q", truncate(m.Type, 32))
	}
	return &m, nil
}

func validScreenTracks(ids []string) bool {
	if len(ids) > maxScreenTracks {
		return false
	}
	for _, id := range ids {
		if len(id) == 0 || len(id) > maxTrackIDLen {
			return false
		}
		for i := 0; i < len(id); i++ {
			if id[i] <= ' ' || id[i] > '~' {
				return false
			}
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// asProtocolError turns any error into one safe to send.
func asProtocolError(err error) *protocolError {
	var pe *protocolError
	if errors.As(err, &pe) {
		return pe
	}
	switch {
	case errors.Is(err, rooms.ErrNotAllowed):
		return errorf(CodeNotAllowed, false, "only a mediator may do that")
	case errors.Is(err, rooms.ErrUnknownParticipant):
		return errorf(CodeNotFound, false, "no such participant")
	case errors.Is(err, rooms.ErrLocked):
		return errorf(CodeRoomLocked, true, "the mediator has locked the room")
	case errors.Is(err, rooms.ErrRemoved):
		return errorf(CodeRemoved, true, "the mediator has removed you from this session")
	case errors.Is(err, rooms.ErrNoConsent):
		return errorf(CodeNoConsent, false, "the participant has not accepted the session rules yet")
	case errors.Is(err, rooms.ErrInvalidMode), errors.Is(err, rooms.ErrNotNeutral),
		errors.Is(err, rooms.ErrNotInterpreter), errors.Is(err, rooms.ErrInvalidParticipant):
		return errorf(CodeBadMessage, false, "%s", strings.TrimPrefix(err.Error(), "rooms: "))
	}
	if errors.Is(err, media.ErrNegotiation) {
		return errorf(CodeNegotiationFailed, false, "the session description or candidate could not be applied")
	}
	return errorf(CodeInternal, true, "internal error")
}
