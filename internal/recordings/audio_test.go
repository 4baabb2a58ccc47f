package recordings

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wavFile is a PCM WAV of secs seconds at rate Hz, 16-bit mono.
func wavFile(secs float64, rate int) []byte {
	n := int(secs * float64(rate) * 2)
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(36+n))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint16(1))
	binary.Write(&b, binary.LittleEndian, uint32(rate))
	binary.Write(&b, binary.LittleEndian, uint32(rate*2))
	binary.Write(&b, binary.LittleEndian, uint16(2))
	binary.Write(&b, binary.LittleEndian, uint16(16))
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(make([]byte, n))
	return b.Bytes()
}

// mp3Frames is n MPEG-1 Layer III frames at 128 kbit/s, 44.1 kHz, stereo
// (417 bytes each), after an ID3v2 tag; with xing, the first frame is an
// Info header counting them.
func mp3Frames(n int, xing bool) []byte {
	var b bytes.Buffer
	b.WriteString("ID3\x04\x00\x00\x00\x00\x00\x0a")
	b.Write(make([]byte, 10))
	frame := func(body func([]byte)) {
		f := make([]byte, 417)
		copy(f, []byte{0xFF, 0xFB, 0x90, 0x00})
		if body != nil {
			body(f)
		}
		b.Write(f)
	}
	if xing {
		frame(func(f []byte) {
			copy(f[36:], "Xing")
			binary.BigEndian.PutUint32(f[40:], 1)
			binary.BigEndian.PutUint32(f[44:], uint32(n))
		})
	}
	for range n {
		frame(nil)
	}
	b.WriteString("TAG")
	b.Write(make([]byte, 125))
	return b.Bytes()
}

// oggPage is an Ogg page with one packet and a granule position.
func oggPage(granule int64, packet []byte) []byte {
	var b bytes.Buffer
	b.WriteString("OggS\x00\x00")
	binary.Write(&b, binary.LittleEndian, granule)
	b.Write(make([]byte, 12)) // serial, sequence, checksum
	b.WriteByte(1)
	b.WriteByte(byte(len(packet)))
	b.Write(packet)
	return b.Bytes()
}

func opusFile(secs float64) []byte {
	head := []byte("OpusHead\x01\x01")
	head = binary.LittleEndian.AppendUint16(head, 312) // pre-skip
	head = binary.LittleEndian.AppendUint32(head, 16000)
	head = append(head, 0, 0, 0)
	out := oggPage(0, head)
	out = append(out, oggPage(0, []byte("OpusTags"))...)
	out = append(out, oggPage(48000, make([]byte, 100))...)
	return append(out, oggPage(int64(secs*48000)+312, make([]byte, 100))...)
}

func vorbisFile(secs float64, rate uint32) []byte {
	head := []byte("\x01vorbis\x00\x00\x00\x00\x02")
	head = binary.LittleEndian.AppendUint32(head, rate)
	head = append(head, make([]byte, 13)...)
	return append(oggPage(0, head), oggPage(int64(secs*float64(rate)), make([]byte, 50))...)
}

func box(typ string, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(bytes.Join(body, nil))))
	return append(append(b, typ...), bytes.Join(body, nil)...)
}

func m4aFile(duration, scale uint32, v1 bool) []byte {
	var mvhd []byte
	if v1 {
		mvhd = append([]byte{1, 0, 0, 0}, make([]byte, 16)...)
		mvhd = binary.BigEndian.AppendUint32(mvhd, scale)
		mvhd = binary.BigEndian.AppendUint64(mvhd, uint64(duration))
	} else {
		mvhd = append([]byte{0, 0, 0, 0}, make([]byte, 8)...)
		mvhd = binary.BigEndian.AppendUint32(mvhd, scale)
		mvhd = binary.BigEndian.AppendUint32(mvhd, duration)
	}
	mvhd = append(mvhd, make([]byte, 80)...)
	return bytes.Join([][]byte{box("ftyp", []byte("M4A \x00\x00\x00\x00M4A isom")), box("free"),
		box("moov", box("mvhd", mvhd), box("trak")), box("mdat", make([]byte, 64))}, nil)
}

func ebml(id []byte, body []byte) []byte {
	size := len(body)
	out := append([]byte{}, id...)
	out = append(out, 0x40|byte(size>>8), byte(size)) // 2-byte size
	return append(out, body...)
}

func webmFile(durationMS float64, withDuration, unknownSegment bool) []byte {
	header := ebml([]byte{0x1A, 0x45, 0xDF, 0xA3}, ebml([]byte{0x42, 0x82}, []byte("webm")))
	info := ebml([]byte{0x2A, 0xD7, 0xB1}, []byte{0x0F, 0x42, 0x40}) // 1,000,000 ns
	if withDuration {
		d := binary.BigEndian.AppendUint64(nil, math.Float64bits(durationMS))
		info = append(info, ebml([]byte{0x44, 0x89}, d)...)
	}
	seg := append(ebml([]byte{0x11, 0x4D, 0x9B, 0x74}, make([]byte, 20)), ebml([]byte{0x15, 0x49, 0xA9, 0x66}, info)...)
	seg = append(seg, ebml([]byte{0x1F, 0x43, 0xB6, 0x75}, make([]byte, 30))...)
	if unknownSegment {
		return append(append(header, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), seg...)
	}
	return append(header, ebml([]byte{0x18, 0x53, 0x80, 0x67}, seg)...)
}

func probeBytes(b []byte) (Format, float64, error) {
	f, err := Detect(b[:min(len(b), HeadSize)])
	if err != nil {
		return "", 0, err
	}
	d, err := Duration(f, bytes.NewReader(b), int64(len(b)))
	return f, d, err
}

func TestDetectAndDuration(t *testing.T) {
	mp3 := mp3Frames(100, false)
	tests := []struct {
		name string
		file []byte
		f    Format
		secs float64
	}{
		{"wav", wavFile(2.5, 16000), FormatWAV, 2.5},
		{"wav streamed size", func() []byte {
			b := wavFile(1, 8000)
			binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
			return b
		}(), FormatWAV, 1},
		{"mp3 walked frames", mp3, FormatMP3, 100 * 1152 / 44100.0},
		{"mp3 xing", mp3Frames(2000, true)[:4000], FormatMP3, 2000 * 1152 / 44100.0},
		{"mp3 without tag", mp3[20:], FormatMP3, 100 * 1152 / 44100.0},
		{"opus", opusFile(3.25), FormatOGG, 3.25},
		{"vorbis", vorbisFile(7, 44100), FormatOGG, 7},
		{"m4a", m4aFile(441000, 44100, false), FormatM4A, 10},
		{"m4a v1", m4aFile(90000, 1000, true), FormatM4A, 90},
		{"webm", webmFile(4500, true, false), FormatWebM, 4.5},
		{"webm unknown segment size", webmFile(1234, true, true), FormatWebM, 1.234},
		{"webm without duration", webmFile(0, false, false), FormatWebM, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, d, err := probeBytes(tt.file)
			if err != nil || f != tt.f || math.Abs(d-tt.secs) > 0.01 {
				t.Fatalf("= %s %.3f %v, want %s %.3f", f, d, err, tt.f, tt.secs)
			}
		})
	}
}

// VBRI sits 32 bytes after the frame header.
func TestMP3VBRI(t *testing.T) {
	f := make([]byte, 417)
	copy(f, []byte{0xFF, 0xFB, 0x90, 0x00})
	copy(f[36:], "VBRI")
	binary.BigEndian.PutUint32(f[36+14:], 500)
	_, d, err := probeBytes(f)
	if err != nil || math.Abs(d-500*1152/44100.0) > 0.01 {
		t.Fatalf("VBRI duration %.3f, %v", d, err)
	}
}

func TestCorruptAndTruncated(t *testing.T) {
	wav := wavFile(2, 16000)
	m4a := m4aFile(441000, 44100, false)
	tests := []struct {
		name, file, want string
	}{
		{"text", "hello, this is not audio at all", "not audio"},
		{"empty", "", "not audio"},
		{"html named .wav", "<html><body>hi</body></html>", "not audio"},
		{"truncated wav data", string(wav[:len(wav)/2]), "truncated"},
		{"wav without data", string(wav[:36]), "no data chunk"},
		{"wav without format", "RIFF\x00\x00\x00\x00WAVEdata\x04\x00\x00\x00abcd", "no format chunk"},
		{"mp3 garbage after tag", "ID3\x04\x00\x00\x00\x00\x00\x00" + strings.Repeat("z", 200), "corrupt"},
		{"mp3 tag past the end", "ID3\x04\x00\x00\x00\x00\x7f\x7f", "truncated"},
		{"ogg unknown codec", string(oggPage(0, []byte("\x7fFLAC\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))), "neither Opus nor Vorbis"},
		{"ogg truncated", "OggS\x00\x02", "truncated"},
		{"m4a truncated", string(m4a[:len(m4a)-20]), "truncated"},
		{"m4a without moov", string(box("ftyp", []byte("M4A \x00\x00\x00\x00"))), `no "moov"`},
		{"webm truncated", string(webmFile(4500, true, false)[:30]), "truncated"},
		{"matroska video", strings.Replace(string(webmFile(1, true, false)), "webm", "mkvx", 1), "not WebM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := probeBytes([]byte(tt.file))
			var fe *formatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a format error with %q", err, tt.want)
			}
		})
	}
}

// TestEspeakWAV reads the duration of real speech: espeak-ng writes
// 22050 Hz 16-bit mono WAV.
func TestEspeakWAV(t *testing.T) {
	bin, err := exec.LookPath("espeak-ng")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("espeak-ng is not installed under CI=true")
		}
		t.Skip("espeak-ng is not installed")
	}
	out := filepath.Join(t.TempDir(), "s.wav")
	if b, err := exec.Command(bin, "-w", out, "Hello from Nodus. This is a test recording.").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, b)
	}
	b, _ := os.ReadFile(out)
	f, d, err := probeBytes(b)
	if err != nil || f != FormatWAV || d < 1 || d > 10 {
		t.Fatalf("espeak WAV: %s %.2f %v", f, d, err)
	}
	if want := float64(len(b)-44) / (22050 * 2); math.Abs(d-want) > 0.05 {
		t.Errorf("duration %.3f, want about %.3f", d, want)
	}
}

func FuzzDuration(f *testing.F) {
	for _, b := range [][]byte{wavFile(0.1, 8000), mp3Frames(3, true), opusFile(1), m4aFile(10, 10, false), webmFile(10, true, false)} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		probeBytes(b) // must not panic or hang
	})
}
