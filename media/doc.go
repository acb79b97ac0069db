// Package media is Concord's selective forwarding unit, built on
// pion/webrtc. It forwards RTP between the participants of a room as it
// is told to (Room.Allow); it knows nothing of cases or of the rules that
// decide who may receive whom.
//
// Each participant has two PeerConnections (Peer): "pub", which the
// client offers and publishes on, and "sub", which the SFU offers and
// sends on. All of them share one UDP port (ICE UDP mux) and, when
// configured, one TCP port (ICE-TCP, passive); an embedded TURN server
// (package media/turn) relays for clients that reach neither, and only to
// the SFU.
//
// Codecs: Opus, and VP8 or H.264 (constrained baseline and baseline,
// packetization mode 1) as the publisher's browser prefers; the SFU
// forwards what it receives, recognising keyframes in both (vp8.go,
// h264.go) to switch layers and resume at one.
//
// Forwarding (track.go, downtrack.go): a published track (upTrack) has a
// read loop per layer (one, or three with simulcast) that parses each
// packet once and hands it to each subscriber's downTrack. The packet is
// rewritten for that subscriber (SSRC, payload type, sequence number and
// timestamp, gapless across what the SFU drops or switches) and written.
// Over UDP the read loop writes it itself, from its own buffer, as a UDP
// write never waits for the subscriber; over TCP, where it could, it is
// copied into the downTrack's bounded queue and its writer goroutine
// writes it, so a slow subscriber only ever fills (and drops from) its
// own queue. A fan-out holds the shared UDP socket (batchconn.go) so
// that its packets leave in one sendmmsg. On Linux the socket is read
// and written with raw system calls, unseen by the Go scheduler, and
// sends leave from a second, send-only socket on the same address
// (batchconn_linux.go). Over UDP a subscriber's
// packets are encrypted with pion's own SRTP context and written to
// that socket directly (direct.go), not down pion's mux, ICE and
// candidate layers. The path allocates nothing per
// packet (BenchmarkForward, docs/benchmarks.md).
//
// RTCP the SFU makes itself, cheaper than pion's interceptors: sender
// reports to subscribers (report.go), receiver reports and
// transport-wide feedback to publishers (feedback.go). Subscribers'
// RTCP is read in place (rtcpraw.go), and a track acts only on feedback
// that names it.
//
// Negotiation: the SFU's sub offers are made on a goroutine of each
// peer's own (Peer.negotiateLoop), never while the room's lock is held,
// so one participant's stalled connection holds up no one else; a
// renegotiation waits until the sub connection's ICE agent has started
// with the previous answer's credentials (Peer.subStarted).
//
// Permissions (Room.Allow, Room.SetAudioMuted) pause and resume: a track
// a subscriber received once stays negotiated on its sub connection and
// forwards nothing while denied, so a return from caucus needs no
// renegotiation (video resumes at a keyframe it asks for). Screen shares
// (Peer.SetScreenTracks) arrive in stream "<publisher>.screen" and have
// exactly their publisher's visibility.
//
// Loss recovery (nack.go): the SFU NACKs publishers itself, from what its
// read loops saw arrive (retransmissions included), and answers its
// subscribers' NACKs from each published layer's packet cache, as RTX
// when negotiated.
//
// Bandwidth (allocate.go, bwe.go): each subscriber's estimate is the
// lower of a loss-based one (receiver reports, REMB) and a delay-based
// one from transport-wide congestion control feedback. The allocator
// shares it among the tracks the subscriber receives: audio first, then
// screen share, the active speaker and the rest; simulcast tracks get the
// best layer that fits (and the subscriber's cap, Peer.SetMaxVideoLayer),
// switching at keyframes. Video that does not fit is paused only after a
// loss-based cut: delay alone lowers layers but blacks out no camera.
// Until then the estimate follows what is actually sent, so a first cut
// is taken from that, not from the start-up guess. A paused video waits
// its turn (longest paused first) and resumes once a probe, at most one
// per hold and backing off after each that loss followed, finds it room.
//
// Counters (stats.go): SFU.Stats sums per-track counters (no shared
// counter on the packet path) for the metrics endpoint.
//
// Active speaker (speaker.go): audio levels (RFC 6464) give each
// subscriber its own active speaker among those it may hear
// (Room.OnActiveSpeaker).
package media
