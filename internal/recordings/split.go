package recordings

import (
	"bytes"
	"encoding/binary"
	"io"
)

// A speech model takes a bounded file (OpenAI's transcription API: 25 MB),
// so a long WAV or MP3 recording is transcribed in pieces, each a valid
// file of its format, and the pieces' transcripts are joined with their
// segments moved to the piece's place in the recording. WAV pieces are
// cut in the quietest moment of the second before the bound (16-bit PCM),
// so a word is rarely cut in two; MP3 pieces at a frame boundary. Other
// formats cannot be cut without decoding them and go whole.

// DefaultPieceBytes bounds one transcription request's audio.
const DefaultPieceBytes = 24 << 20

// audioPiece is one request's audio: header (a WAV piece's own RIFF
// header), then the section [off, off+n) of the file; start is where it
// begins in the recording, in seconds.
type audioPiece struct {
	header []byte
	off, n int64
	start  float64
}

// reader is the piece's bytes.
func (p audioPiece) reader(r io.ReaderAt) io.Reader {
	return io.MultiReader(bytes.NewReader(p.header), io.NewSectionReader(r, p.off, p.n))
}

// splitAudio cuts a file of size bytes into pieces of at most max bytes;
// ok is false for a format it cannot cut, or a file that needs no cut.
func splitAudio(f Format, r io.ReaderAt, size, max int64) (pieces []audioPiece, ok bool, err error) {
	if size <= max {
		return nil, false, nil
	}
	switch f {
	case FormatWAV:
		pieces, err = splitWAV(r, size, max)
	case FormatMP3:
		pieces, err = splitMP3(r, size, max)
	default:
		return nil, false, nil
	}
	return pieces, err == nil, err
}

// wavLayout is what cutting a WAV needs: its format chunk (header
// included) and where its samples are.
type wavLayout struct {
	fmtChunk          []byte
	dataOff, dataSize int64
	byteRate          int64
	blockAlign        int64
	pcm16             bool // 16-bit integer PCM: its loudness can be read
}

func readWAVLayout(r io.ReaderAt, size int64) (wavLayout, error) {
	var w wavLayout
	off := int64(12)
	for off+8 <= size {
		var h [8]byte
		if err := readAt(r, h[:], off, "a WAV chunk header"); err != nil {
			return w, err
		}
		id, n := string(h[:4]), int64(binary.LittleEndian.Uint32(h[4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if n < 16 || n > 1024 || body+n > size {
				return w, unreadable("the WAV format chunk is malformed")
			}
			// With its pad byte when its size is odd, as RIFF pads chunks.
			w.fmtChunk = make([]byte, 8+n+n%2)
			if err := readAt(r, w.fmtChunk[:8+n], off, "the WAV format chunk"); err != nil {
				return w, err
			}
			fm := w.fmtChunk[8:]
			w.byteRate = int64(binary.LittleEndian.Uint32(fm[8:]))
			w.blockAlign = int64(binary.LittleEndian.Uint16(fm[12:]))
			w.pcm16 = binary.LittleEndian.Uint16(fm[0:]) == 1 && binary.LittleEndian.Uint16(fm[14:]) == 16
			if w.byteRate == 0 || w.blockAlign == 0 {
				return w, unreadable("the WAV format chunk has no byte rate or block size")
			}
		case "data":
			if w.fmtChunk == nil {
				return w, unreadable("the WAV file has no format chunk before its data")
			}
			if avail := size - body; n == 0 || n == 0xFFFFFFFF || n > avail {
				n = avail
			}
			w.dataOff, w.dataSize = body, n-n%w.blockAlign
			return w, nil
		}
		off = body + n + n%2
	}
	return w, unreadable("the WAV file has no data chunk")
}

// wavQuietWindow is the window whose loudness is compared when looking
// for a place to cut, and wavQuietSearch how far back from the bound it
// looks.
const (
	wavQuietWindow = 0.02 // seconds
	wavQuietSearch = 1.0  // seconds
)

func splitWAV(r io.ReaderAt, size, max int64) ([]audioPiece, error) {
	w, err := readWAVLayout(r, size)
	if err != nil {
		return nil, err
	}
	headerLen := int64(12 + len(w.fmtChunk) + 8)
	capacity := (max - headerLen) / w.blockAlign * w.blockAlign
	if capacity < w.byteRate { // less than a second a piece: a bound no speech model has
		return nil, unreadable("the transcription piece size is too small for this WAV file")
	}
	var pieces []audioPiece
	for done := int64(0); done < w.dataSize; {
		n := min(capacity, w.dataSize-done)
		if done+n < w.dataSize && w.pcm16 {
			n = w.quietCut(r, done, n)
		}
		header := make([]byte, 0, headerLen)
		header = append(header, "RIFF"...)
		header = binary.LittleEndian.AppendUint32(header, uint32(headerLen-8+n))
		header = append(header, "WAVE"...)
		header = append(header, w.fmtChunk...)
		header = append(header, "data"...)
		header = binary.LittleEndian.AppendUint32(header, uint32(n))
		pieces = append(pieces, audioPiece{header: header, off: w.dataOff + done, n: n,
			start: float64(done) / float64(w.byteRate)})
		done += n
	}
	return pieces, nil
}

// quietCut returns where to end the piece that starts done bytes into the
// samples and may hold n: the middle of the quietest window in the last
// second before n, on a block boundary.
func (w wavLayout) quietCut(r io.ReaderAt, done, n int64) int64 {
	window := max(w.blockAlign, int64(wavQuietWindow*float64(w.byteRate))/w.blockAlign*w.blockAlign)
	search := min(n/2, int64(wavQuietSearch*float64(w.byteRate))) / w.blockAlign * w.blockAlign
	if search < 2*window {
		return n
	}
	buf := make([]byte, search)
	if _, err := r.ReadAt(buf, w.dataOff+done+n-search); err != nil {
		return n
	}
	best, bestLoud := n, int64(-1)
	for at := int64(0); at+window <= search; at += window {
		var loud int64
		for i := at; i+1 < at+window; i += 2 {
			s := int64(int16(binary.LittleEndian.Uint16(buf[i:])))
			loud += max(s, -s)
		}
		if bestLoud < 0 || loud <= bestLoud {
			// The latest of the quietest windows, so silence cuts near
			// the bound; the cut goes in its middle: the piece ends in
			// the silence, the next starts in it.
			best, bestLoud = n-search+at+window/2/w.blockAlign*w.blockAlign, loud
		}
	}
	return best
}

// mp3Resync is how far past a broken frame splitMP3 looks for the stream
// to go on, and mp3Trailer how much unreadable data at the end it takes
// for a tag (ID3v1 is 128 bytes, APE tags a few KiB).
const (
	mp3Resync  = 64 << 10
	mp3Trailer = 16 << 10
)

func splitMP3(r io.ReaderAt, size, max int64) ([]audioPiece, error) {
	off, err := mp3Start(r, size)
	if err != nil {
		return nil, err
	}
	var pieces []audioPiece
	cur := audioPiece{off: off}
	samples, rate := int64(0), 0
	for off < size {
		f, err := mp3FrameAt(r, off, size)
		if err != nil || off+int64(f.size) > size {
			if rate == 0 {
				if err == nil {
					err = unreadable("the file is truncated: its first MP3 frame is incomplete")
				}
				return nil, err
			}
			// Junk or a tag inside the stream: the frames go on after it,
			// in a piece of their own, or the file ends here.
			next, ok := mp3Sync(r, off+1, size)
			if !ok {
				if size-off > mp3Trailer {
					return nil, unreadable("the MP3 data is corrupt: no frame follows byte %d, %d bytes before the end", off, size-off)
				}
				break // a tag at the end
			}
			if cur.n > 0 {
				pieces = append(pieces, cur)
			}
			off, cur = next, audioPiece{off: next, start: float64(samples) / float64(rate)}
			continue
		}
		if rate == 0 {
			rate = f.sampleRate
		}
		if cur.n > 0 && cur.n+int64(f.size) > max {
			pieces = append(pieces, cur)
			cur = audioPiece{off: off, start: float64(samples) / float64(rate)}
		}
		cur.n += int64(f.size)
		samples += int64(f.samples)
		off += int64(f.size)
	}
	if cur.n > 0 {
		pieces = append(pieces, cur)
	}
	return pieces, nil
}

// mp3Sync finds the next frame at or after off, within mp3Resync bytes:
// a frame header whose frame is followed by another, so a stray sync
// pattern in the junk is not taken for one.
func mp3Sync(r io.ReaderAt, off, size int64) (int64, bool) {
	end := min(size, off+mp3Resync)
	buf := make([]byte, end-off)
	if n, _ := r.ReadAt(buf, off); n < len(buf) {
		buf = buf[:n]
	}
	for i := 0; i+4 <= len(buf); i++ {
		if buf[i] != 0xFF || buf[i+1]&0xE0 != 0xE0 {
			continue
		}
		f, ok := parseMP3Header(buf[i : i+4])
		if !ok {
			continue
		}
		at := off + int64(i)
		if g, err := mp3FrameAt(r, at+int64(f.size), size); err == nil && g.sampleRate == f.sampleRate {
			return at, true
		}
	}
	return 0, false
}

// mp3Start is the offset of an MP3 file's first frame: after its ID3v2
// tag, if it has one.
func mp3Start(r io.ReaderAt, size int64) (int64, error) {
	var h [10]byte
	if err := readAt(r, h[:], 0, "the MP3 header"); err != nil {
		return 0, err
	}
	if string(h[:3]) != "ID3" {
		return 0, nil
	}
	off := 10 + (int64(h[6]&0x7f)<<21 | int64(h[7]&0x7f)<<14 | int64(h[8]&0x7f)<<7 | int64(h[9]&0x7f))
	if h[5]&0x10 != 0 {
		off += 10 // footer
	}
	if off >= size {
		return 0, unreadable("the file is truncated: it ends inside its ID3 tag")
	}
	return off, nil
}
