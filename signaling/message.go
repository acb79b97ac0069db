package signaling

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/concord-odr/concord/media"
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
	CodeInternal          = "internal"
)

// inbound is a message from a client.
type inbound struct {
	Type      string               `json:"type"`
	Token     string               `json:"token,omitempty"`
	PC        string               `json:"pc,omitempty"`
	SDP       string               `json:"sdp,omitempty"`
	Candidate *media.CandidateInit `json:"candidate,omitempty"`
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
	Result        string               `json:"result,omitempty"`
	Code          string               `json:"code,omitempty"`
	Message       string               `json:"message,omitempty"`
	Fatal         bool                 `json:"fatal,omitempty"`
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
	case TypeAnswer:
		if m.PC != media.PCSubscribe || m.SDP == "" {
			return nil, errorf(CodeBadMessage, false, `answer needs pc "sub" and an sdp`)
		}
	case TypeCandidate:
		if (m.PC != media.PCPublish && m.PC != media.PCSubscribe) || m.Candidate == nil {
			return nil, errorf(CodeBadMessage, false, `candidate needs pc "pub" or "sub" and a candidate`)
		}
	case TypeLeave:
	case "":
		return nil, errorf(CodeBadMessage, false, "message has no type")
	default:
		return nil, errorf(CodeBadMessage, false, "unknown message type %q", truncate(m.Type, 32))
	}
	return &m, nil
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
	if errors.Is(err, media.ErrNegotiation) {
		return errorf(CodeNegotiationFailed, false, "the session description or candidate could not be applied")
	}
	return errorf(CodeInternal, true, "internal error")
}
