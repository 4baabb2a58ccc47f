package recordings

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// Format is an audio container Nodus accepts, detected from content.
type Format string

const (
	FormatWAV  Format = "wav"
	FormatMP3  Format = "mp3"
	FormatM4A  Format = "m4a"
	FormatOGG  Format = "ogg"
	FormatWebM Format = "webm"
)

// MIME is the format's media type, as served and as sent upstream.
func (f Format) MIME() string {
	switch f {
	case FormatWAV:
		return "audio/wav"
	case FormatMP3:
		return "audio/mpeg"
	case FormatM4A:
		return "audio/mp4"
	case FormatOGG:
		return "audio/ogg"
	case FormatWebM:
		return "audio/webm"
	}
	return "application/octet-stream"
}

// formatOfMIME is the inverse of MIME, for stored rows.
func formatOfMIME(m string) Format {
	for _, f := range []Format{FormatWAV, FormatMP3, FormatM4A, FormatOGG, FormatWebM} {
		if f.MIME() == m {
			return f
		}
	}
	return ""
}

// HeadSize is how much of a file Detect needs.
const HeadSize = 64

// errUnreadable is the EINVALID cause of a file that is not audio Nodus
// reads; its message goes to the uploader.
type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

func unreadable(format string, args ...any) error { return &formatError{fmt.Sprintf(format, args...)} }

// Detect names the format of a file from its first bytes (at least
// HeadSize of them when the file is that long). The name and the client's
// Content-Type are never consulted.
func Detect(head []byte) (Format, error) {
	switch {
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return FormatWAV, nil
	case len(head) >= 4 && string(head[:4]) == "OggS":
		return FormatOGG, nil
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return FormatM4A, nil
	case len(head) >= 4 && bytes.Equal(head[:4], []byte{0x1A, 0x45, 0xDF, 0xA3}):
		return FormatWebM, nil
	case len(head) >= 3 && string(head[:3]) == "ID3":
		return FormatMP3, nil
	case len(head) >= 4:
		if _, ok := parseMP3Header(head[:4]); ok {
			return FormatMP3, nil
		}
	}
	return "", unreadable("the file is not audio in a supported format (WAV, MP3, M4A, OGG or WebM)")
}

// Duration reads the length in seconds of audio of format f from its
// container, without decoding it. A header that cannot be read, or that
// claims more than the file holds, is an error saying what is wrong; 0
// with no error means the container does not record its length (a WebM
// stream from a browser's MediaRecorder).
func Duration(f Format, r io.ReaderAt, size int64) (float64, error) {
	var (
		d   float64
		err error
	)
	switch f {
	case FormatWAV:
		d, err = wavDuration(r, size)
	case FormatMP3:
		d, err = mp3Duration(r, size)
	case FormatOGG:
		d, err = oggDuration(r, size)
	case FormatM4A:
		d, err = m4aDuration(r, size)
	case FormatWebM:
		d, err = webmDuration(r, size)
	default:
		return 0, unreadable("unsupported audio format")
	}
	if err != nil {
		return 0, err
	}
	if math.IsNaN(d) || math.IsInf(d, 0) || d < 0 || d > 7*24*3600 {
		return 0, unreadable("the %s file records an impossible duration", f)
	}
	return d, nil
}

// readAt reads exactly len(b) bytes at off, or reports the file truncated.
func readAt(r io.ReaderAt, b []byte, off int64, what string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return unreadable("the file is truncated: %s is incomplete", what)
	}
	return err
}

// WAV: RIFF chunks; the length is the data chunk's size over the byte rate.
func wavDuration(r io.ReaderAt, size int64) (float64, error) {
	var byteRate uint32
	off := int64(12)
	for off+8 <= size {
		var h [8]byte
		if err := readAt(r, h[:], off, "a WAV chunk header"); err != nil {
			return 0, err
		}
		id, n := string(h[:4]), int64(binary.LittleEndian.Uint32(h[4:]))
		body := off + 8
		switch id {
		case "fmt ":
			if n < 16 {
				return 0, unreadable("the WAV format chunk is too short")
			}
			var fm [16]byte
			if err := readAt(r, fm[:], body, "the WAV format chunk"); err != nil {
				return 0, err
			}
			channels, rate := binary.LittleEndian.Uint16(fm[2:]), binary.LittleEndian.Uint32(fm[4:])
			byteRate = binary.LittleEndian.Uint32(fm[8:])
			if channels == 0 || rate == 0 || byteRate == 0 {
				return 0, unreadable("the WAV format chunk has no channels or sample rate")
			}
		case "data":
			if byteRate == 0 {
				return 0, unreadable("the WAV file has no format chunk before its data")
			}
			avail := size - body
			switch {
			case n == 0 || n == 0xFFFFFFFF:
				// A streamed WAV whose writer could not go back to
				// fill the size in: the data runs to the end.
				n = avail
			case n > avail:
				return 0, unreadable("the file is truncated: the WAV data chunk claims %d bytes, %d are present", n, avail)
			}
			return float64(n) / float64(byteRate), nil
		}
		off = body + n + n%2 // chunks are padded to even sizes
	}
	return 0, unreadable("the WAV file has no data chunk")
}

// MP3 frame headers (ISO 11172-3 and 13818-3).
type mp3Frame struct {
	version    int // 1, 2 or 25 (2.5)
	layer      int // 1, 2, 3
	bitrate    int // bits per second
	sampleRate int
	size       int // bytes, header included
	samples    int // per frame
	mono       bool
}

var mp3Bitrates = [2][3][16]int{
	{ // MPEG-1: layers I, II, III
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, -1},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, -1},
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1},
	},
	{ // MPEG-2 and 2.5
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, -1},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1},
	},
}

var mp3Rates = map[int][3]int{1: {44100, 48000, 32000}, 2: {22050, 24000, 16000}, 25: {11025, 12000, 8000}}

func parseMP3Header(h []byte) (mp3Frame, bool) {
	if len(h) < 4 || h[0] != 0xFF || h[1]&0xE0 != 0xE0 {
		return mp3Frame{}, false
	}
	var f mp3Frame
	switch (h[1] >> 3) & 3 {
	case 0:
		f.version = 25
	case 2:
		f.version = 2
	case 3:
		f.version = 1
	default:
		return f, false
	}
	switch (h[1] >> 1) & 3 {
	case 1:
		f.layer = 3
	case 2:
		f.layer = 2
	case 3:
		f.layer = 1
	default:
		return f, false
	}
	vi := 0
	if f.version != 1 {
		vi = 1
	}
	br := mp3Bitrates[vi][f.layer-1][h[2]>>4]
	ri := (h[2] >> 2) & 3
	if br <= 0 || ri == 3 { // free-format or bad bitrate, reserved rate
		return f, false
	}
	f.bitrate, f.sampleRate = br*1000, mp3Rates[f.version][ri]
	pad := int(h[2]>>1) & 1
	f.mono = h[3]>>6 == 3
	switch {
	case f.layer == 1:
		f.samples = 384
		f.size = (12*f.bitrate/f.sampleRate + pad) * 4
	case f.layer == 3 && f.version != 1:
		f.samples = 576
		f.size = 72*f.bitrate/f.sampleRate + pad
	default:
		f.samples = 1152
		f.size = 144*f.bitrate/f.sampleRate + pad
	}
	return f, f.size > 4
}

// mp3Duration finds the first frame (after an ID3v2 tag), uses its Xing
// or VBRI header's frame count when there is one, and otherwise walks
// every frame header, so constant and variable bit rates both come out
// right.
func mp3Duration(r io.ReaderAt, size int64) (float64, error) {
	off, err := mp3Start(r, size)
	if err != nil {
		return 0, err
	}
	first, err := mp3FrameAt(r, off, size)
	if err != nil {
		return 0, err
	}
	// A Xing/Info or VBRI header in the first frame gives the count.
	buf := make([]byte, min(first.size, 200))
	if err := readAt(r, buf, off, "the first MP3 frame"); err != nil {
		return 0, err
	}
	side := 32
	switch {
	case first.version == 1 && first.mono:
		side = 17
	case first.version != 1 && !first.mono:
		side = 17
	case first.version != 1:
		side = 9
	}
	if x := 4 + side; len(buf) >= x+12 && (string(buf[x:x+4]) == "Xing" || string(buf[x:x+4]) == "Info") {
		if flags := binary.BigEndian.Uint32(buf[x+4:]); flags&1 != 0 {
			frames := binary.BigEndian.Uint32(buf[x+8:])
			return float64(frames) * float64(first.samples) / float64(first.sampleRate), nil
		}
	}
	if len(buf) >= 36+18 && string(buf[36:40]) == "VBRI" {
		frames := binary.BigEndian.Uint32(buf[36+14:])
		return float64(frames) * float64(first.samples) / float64(first.sampleRate), nil
	}
	samples, rate := int64(0), first.sampleRate
	for off < size {
		f, err := mp3FrameAt(r, off, size)
		if err != nil {
			if samples > 0 {
				break // trailing tag (ID3v1, APE) or junk after the last frame
			}
			return 0, err
		}
		if off+int64(f.size) > size {
			if samples == 0 {
				return 0, unreadable("the file is truncated: its first MP3 frame is incomplete")
			}
			break
		}
		samples += int64(f.samples)
		off += int64(f.size)
	}
	return float64(samples) / float64(rate), nil
}

func mp3FrameAt(r io.ReaderAt, off, size int64) (mp3Frame, error) {
	if off+4 > size {
		return mp3Frame{}, unreadable("the file is truncated: no MP3 frame follows the header")
	}
	var h [4]byte
	if err := readAt(r, h[:], off, "an MP3 frame header"); err != nil {
		return mp3Frame{}, err
	}
	f, ok := parseMP3Header(h[:])
	if !ok {
		return f, unreadable("the MP3 data is corrupt: no valid frame header at byte %d", off)
	}
	return f, nil
}

// OGG: the first page's packet names the codec (and Vorbis its rate; Opus
// always counts at 48 kHz, less its pre-skip); the last page's granule
// position is the stream's last sample.
func oggDuration(r io.ReaderAt, size int64) (float64, error) {
	var page [27]byte
	if err := readAt(r, page[:], 0, "the first Ogg page"); err != nil {
		return 0, err
	}
	nseg := int(page[26])
	if size < int64(27+nseg+19) {
		return 0, unreadable("the file is truncated: the first Ogg page is incomplete")
	}
	packet := make([]byte, 19)
	if err := readAt(r, packet, int64(27+nseg), "the Ogg codec header"); err != nil {
		return 0, err
	}
	var rate, preSkip float64
	switch {
	case string(packet[:8]) == "OpusHead":
		rate, preSkip = 48000, float64(binary.LittleEndian.Uint16(packet[10:]))
	case string(packet[:7]) == "\x01vorbis":
		rate = float64(binary.LittleEndian.Uint32(packet[12:]))
	default:
		return 0, unreadable("the Ogg file holds neither Opus nor Vorbis audio")
	}
	if rate == 0 {
		return 0, unreadable("the Ogg codec header has no sample rate")
	}
	// The last page starts within the last 64 KiB (a page is at most
	// 65307 bytes); search back for its capture pattern.
	tail := min(size, 65536+27)
	buf := make([]byte, tail)
	if err := readAt(r, buf, size-tail, "the end of the Ogg file"); err != nil {
		return 0, err
	}
	for i := len(buf) - 27; i >= 0; i-- {
		if string(buf[i:i+4]) != "OggS" {
			continue
		}
		granule := int64(binary.LittleEndian.Uint64(buf[i+6:]))
		if granule < 0 {
			continue // a page where no packet ends
		}
		return max(0, float64(granule)-preSkip) / rate, nil
	}
	return 0, unreadable("the Ogg file has no page with a granule position")
}

// M4A (ISO BMFF): the movie header's duration over its timescale.
func m4aDuration(r io.ReaderAt, size int64) (float64, error) {
	// Every top-level box must fit: a cut-off mdat is a truncated file
	// even though its header is whole.
	if _, _, err := findBox(r, 0, size, ""); !errors.Is(err, errNoBox) {
		return 0, err
	}
	moov, moovEnd, err := findBox(r, 0, size, "moov")
	if err != nil {
		return 0, boxError(err)
	}
	mvhd, _, err := findBox(r, moov, moovEnd, "mvhd")
	if err != nil {
		return 0, boxError(err)
	}
	var b [32]byte
	if err := readAt(r, b[:], mvhd, "the movie header"); err != nil {
		return 0, err
	}
	var scale uint32
	var dur uint64
	if b[0] == 1 {
		scale, dur = binary.BigEndian.Uint32(b[20:]), binary.BigEndian.Uint64(b[24:])
	} else {
		scale, dur = binary.BigEndian.Uint32(b[12:]), uint64(binary.BigEndian.Uint32(b[16:]))
	}
	if scale == 0 {
		return 0, unreadable("the M4A movie header has no timescale")
	}
	return float64(dur) / float64(scale), nil
}

// boxError makes a missing box an unreadable file.
func boxError(err error) error {
	var nb *noBoxError
	if errors.As(err, &nb) {
		return unreadable("%s", nb.Error())
	}
	return err
}

// findBox returns the body's start and end of the first box of type typ
// among the boxes between off and end.
func findBox(r io.ReaderAt, off, end int64, typ string) (int64, int64, error) {
	for off+8 <= end {
		var h [16]byte
		if err := readAt(r, h[:8], off, "an M4A box header"); err != nil {
			return 0, 0, err
		}
		n, hdr := int64(binary.BigEndian.Uint32(h[:4])), int64(8)
		switch n {
		case 0:
			n = end - off
		case 1:
			if err := readAt(r, h[8:], off+8, "an M4A box header"); err != nil {
				return 0, 0, err
			}
			n, hdr = int64(binary.BigEndian.Uint64(h[8:])), 16
		}
		if n < hdr {
			return 0, 0, unreadable("the M4A file is corrupt: a box has an impossible size")
		}
		if off+n > end {
			return 0, 0, unreadable("the file is truncated: the M4A %q box runs past the end", string(h[4:8]))
		}
		if string(h[4:8]) == typ {
			return off + hdr, off + n, nil
		}
		off += n
	}
	return 0, 0, &noBoxError{typ}
}

// noBoxError is findBox's answer when no box has the type asked for.
type noBoxError struct{ typ string }

func (e *noBoxError) Error() string { return "the M4A file has no " + strconv.Quote(e.typ) + " box" }

var errNoBox = &noBoxError{}

func (e *noBoxError) Is(target error) bool { return target == errNoBox }

// WebM (EBML): the Segment's Info element's Duration, in units of its
// TimecodeScale (nanoseconds per unit, 1 ms by default).
const (
	ebmlSegment       = 0x18538067
	ebmlInfo          = 0x1549A966
	ebmlTimecodeScale = 0x2AD7B1
	ebmlDuration      = 0x4489
	ebmlCluster       = 0x1F43B675
	ebmlDocType       = 0x4282
)

func webmDuration(r io.ReaderAt, size int64) (float64, error) {
	// The EBML header: its DocType must be webm.
	id, n, body, err := ebmlElement(r, 0, size)
	if err != nil {
		return 0, err
	}
	if id != 0x1A45DFA3 || n < 0 {
		return 0, unreadable("the WebM file has no EBML header")
	}
	docType := ""
	for off := body; off < body+n; {
		cid, cn, cbody, err := ebmlElement(r, off, body+n)
		if err != nil {
			return 0, err
		}
		if cid == ebmlDocType && cn > 0 && cn < 32 {
			b := make([]byte, cn)
			if err := readAt(r, b, cbody, "the WebM doc type"); err != nil {
				return 0, err
			}
			docType = string(bytes.TrimRight(b, "\x00"))
		}
		off = cbody + cn
	}
	if docType != "webm" {
		return 0, unreadable("the EBML file is %q, not WebM", docType)
	}
	off := body + n
	id, segSize, seg, err := ebmlElement(r, off, size)
	if err != nil {
		return 0, err
	}
	if id != ebmlSegment {
		return 0, unreadable("the WebM file has no segment")
	}
	segEnd := size
	if segSize >= 0 {
		segEnd = min(size, seg+segSize)
	}
	for off = seg; off < segEnd; {
		cid, cn, cbody, err := ebmlElement(r, off, segEnd)
		if err != nil {
			return 0, err
		}
		if cid == ebmlCluster || cn < 0 {
			break // media data: the Info element comes before it
		}
		if cid == ebmlInfo {
			return webmInfoDuration(r, cbody, cbody+cn)
		}
		off = cbody + cn
	}
	return 0, unreadable("the WebM segment has no Info element")
}

func webmInfoDuration(r io.ReaderAt, off, end int64) (float64, error) {
	scale, dur := uint64(1_000_000), -1.0
	for off < end {
		id, n, body, err := ebmlElement(r, off, end)
		if err != nil {
			return 0, err
		}
		if n < 0 || n > 8 && (id == ebmlTimecodeScale || id == ebmlDuration) {
			return 0, unreadable("the WebM Info element is corrupt")
		}
		switch id {
		case ebmlTimecodeScale:
			b := make([]byte, n)
			if err := readAt(r, b, body, "the WebM timecode scale"); err != nil {
				return 0, err
			}
			scale = 0
			for _, c := range b {
				scale = scale<<8 | uint64(c)
			}
		case ebmlDuration:
			b := make([]byte, n)
			if err := readAt(r, b, body, "the WebM duration"); err != nil {
				return 0, err
			}
			switch n {
			case 4:
				dur = float64(math.Float32frombits(binary.BigEndian.Uint32(b)))
			case 8:
				dur = math.Float64frombits(binary.BigEndian.Uint64(b))
			default:
				return 0, unreadable("the WebM duration has an impossible size")
			}
		}
		off = body + n
	}
	if dur < 0 {
		return 0, nil // not recorded (live MediaRecorder output)
	}
	return dur * float64(scale) / 1e9, nil
}

// ebmlElement reads the element at off: its id (marker bits kept), its
// size (-1 for "unknown") and where its body starts.
func ebmlElement(r io.ReaderAt, off, end int64) (id uint32, size int64, body int64, err error) {
	var b [12]byte
	n := min(int64(len(b)), end-off)
	if n < 2 {
		return 0, 0, 0, unreadable("the file is truncated: a WebM element header is incomplete")
	}
	if err := readAt(r, b[:n], off, "a WebM element header"); err != nil {
		return 0, 0, 0, err
	}
	idLen := vintLen(b[0])
	if idLen == 0 || idLen > 4 || int64(idLen) >= n {
		return 0, 0, 0, unreadable("the WebM data is corrupt: a bad element id at byte %d", off)
	}
	for _, c := range b[:idLen] {
		id = id<<8 | uint32(c)
	}
	szLen := vintLen(b[idLen])
	if szLen == 0 || int64(idLen+szLen) > n {
		return 0, 0, 0, unreadable("the WebM data is corrupt: a bad element size at byte %d", off)
	}
	v := uint64(b[idLen] & (0xFF >> szLen))
	all := v == uint64(0xFF>>szLen)
	for _, c := range b[idLen+1 : idLen+szLen] {
		v = v<<8 | uint64(c)
		all = all && c == 0xFF
	}
	body = off + int64(idLen+szLen)
	if all {
		return id, -1, body, nil
	}
	if v > uint64(end-body) {
		return 0, 0, 0, unreadable("the file is truncated: a WebM element runs past the end")
	}
	return id, int64(v), body, nil
}

// vintLen is the length of an EBML variable-size integer from its first
// byte (0 for an invalid one).
func vintLen(c byte) int {
	for i := 0; i < 8; i++ {
		if c&(0x80>>i) != 0 {
			return i + 1
		}
	}
	return 0
}
