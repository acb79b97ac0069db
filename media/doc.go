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
// Forwarding (track.go, downtrack.go): a published track (upTrack) has a
// read loop per layer (one, or three with simulcast) that parses each
// packet once and copies it into the bounded queue of each subscriber's
// downTrack, never waiting on a subscriber. Each downTrack has a writer
// goroutine that rewrites SSRC, payload type, sequence number and
// timestamp for its subscriber (gapless across what the SFU drops or
// switches), writes the packet and keeps it for retransmission. The path
// allocates nothing per packet (BenchmarkForward, docs/benchmarks.md).
//
// Loss recovery (nack.go): the SFU NACKs publishers itself, from what its
// read loops saw arrive (retransmissions included), and answers its
// subscribers' NACKs from each downTrack's cache, as RTX when negotiated.
//
// Simulcast (allocate.go): a subscriber receives, of each simulcast
// track, the layer its bandwidth estimate (receiver report loss, REMB)
// and its own cap (Peer.SetMaxVideoLayer) allow, switching at keyframes.
//
// Active speaker (speaker.go): audio levels (RFC 6464) give each
// subscriber its own active speaker among those it may hear
// (Room.OnActiveSpeaker).
package media
