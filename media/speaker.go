package media

import "time"

const (
	// activeLevel is the RFC 6464 level (-dBov) at or below which an audio
	// packet counts as speech.
	activeLevel = 45
	// speakerTick is how often the room's active speaker is re-evaluated.
	speakerTick = 250 * time.Millisecond
	// frameTime is the audio packetisation Concord's clients use (Opus,
	// 20 ms): a tick holds speakerTick/frameTime frames, sent or not
	// (discontinuous transmission sends few packets in silence).
	frameTime = 20 * time.Millisecond
	// speakerMinScore is the smoothed loudness a participant needs to be
	// an active speaker (about a third of the time speaking).
	speakerMinScore = 25
	// speakerMargin is how much louder a challenger must be than the
	// current speaker, for speakerTicks ticks in a row, to take over.
	speakerMargin = 1.3
	speakerTicks  = 2
	// speakerSmoothing is the weight of the newest tick in the score.
	speakerSmoothing = 0.4
)

// levelSample is one participant's audio over one tick.
type levelSample struct {
	packets, voiced, loud uint64
}

// speakerDetector picks each subscriber's active speaker among the
// participants it may hear (and itself). It is pure: the room feeds it
// samples and the current permissions, once per tick.
type speakerDetector struct {
	frames  float64            // frames per tick
	scores  map[string]float64 // participant -> smoothed loudness
	current map[string]string  // subscriber -> its active speaker
	leader  map[string]string  // subscriber -> challenger
	leads   map[string]int     // subscriber -> ticks the challenger led
}

// speakerEvent says subscriber's active speaker is now speaker ("" when
// it may hear no current speaker).
type speakerEvent struct {
	subscriber, speaker string
}

func newSpeakerDetector(tick time.Duration) *speakerDetector {
	return &speakerDetector{
		frames:  float64(tick) / float64(frameTime),
		scores:  map[string]float64{},
		current: map[string]string{},
		leader:  map[string]string{},
		leads:   map[string]int{},
	}
}

// hearing is tick's hears for subscribers subs, where hears says
// whether a subscriber hears a participant now: only of the
// participants that may be a speaker after this tick of samples (those
// with samples or a score; anyone else scores 0) and each subscriber's
// current speaker (which must be seen to be still heard). Asking about
// every participant for every subscriber cost 4 % of a 74-person
// room's server, and changes no outcome (TestSpeakerHearing).
func (s *speakerDetector) hearing(samples map[string]levelSample, subs []string, hears func(sub, pub string) bool) map[string][]string {
	cands := make([]string, 0, len(samples)+len(s.scores))
	for id := range samples {
		cands = append(cands, id)
	}
	for id := range s.scores {
		if _, ok := samples[id]; !ok {
			cands = append(cands, id)
		}
	}
	out := make(map[string][]string, len(subs))
	for _, sub := range subs {
		var pubs []string
		cur := s.current[sub]
		for _, pub := range cands {
			if pub == cur {
				cur = ""
			}
			if hears(sub, pub) {
				pubs = append(pubs, pub)
			}
		}
		if cur != "" && hears(sub, cur) {
			pubs = append(pubs, cur)
		}
		out[sub] = pubs
	}
	return out
}

// tick folds one tick of samples into the scores, then re-evaluates
// every subscriber. hears lists, for each present subscriber, the
// participants it may receive: all of them, or at least the candidates
// among them and its current speaker (nothing else changes the
// outcome). It returns the changes.
func (s *speakerDetector) tick(samples map[string]levelSample, hears map[string][]string) []speakerEvent {
	for id, score := range s.scores {
		if _, ok := samples[id]; !ok {
			score *= 1 - speakerSmoothing
			if score < 1 {
				delete(s.scores, id)
				continue
			}
			s.scores[id] = score
		}
	}
	for id, smp := range samples {
		frames := max(float64(smp.packets), s.frames)
		now := float64(smp.loud) / frames
		s.scores[id] = (1-speakerSmoothing)*s.scores[id] + speakerSmoothing*now
	}

	var events []speakerEvent
	for sub := range s.current {
		if _, ok := hears[sub]; !ok {
			delete(s.current, sub)
			delete(s.leader, sub)
			delete(s.leads, sub)
		}
	}
	for sub, pubs := range hears {
		best, bestScore := "", 0.0
		cur, curOK := s.current[sub], false
		consider := func(id string) {
			sc := s.scores[id]
			if id == cur {
				curOK = true
			}
			if sc >= speakerMinScore && (sc > bestScore || sc == bestScore && id < best) {
				best, bestScore = id, sc
			}
		}
		consider(sub)
		for _, id := range pubs {
			consider(id)
		}
		switch {
		case cur != "" && !curOK:
			// The current speaker left or may no longer be heard.
			s.setSpeaker(sub, best, &events)
		case best == "" || best == cur:
			delete(s.leader, sub)
			delete(s.leads, sub)
		case cur == "" || s.scores[cur] < speakerMinScore:
			s.setSpeaker(sub, best, &events)
		case bestScore > s.scores[cur]*speakerMargin:
			if s.leader[sub] != best {
				s.leader[sub], s.leads[sub] = best, 0
			}
			s.leads[sub]++
			if s.leads[sub] >= speakerTicks {
				s.setSpeaker(sub, best, &events)
			}
		default:
			delete(s.leader, sub)
			delete(s.leads, sub)
		}
	}
	return events
}

func (s *speakerDetector) setSpeaker(sub, speaker string, events *[]speakerEvent) {
	delete(s.leader, sub)
	delete(s.leads, sub)
	if s.current[sub] == speaker {
		return
	}
	if speaker == "" {
		delete(s.current, sub)
	} else {
		s.current[sub] = speaker
	}
	*events = append(*events, speakerEvent{subscriber: sub, speaker: speaker})
}
