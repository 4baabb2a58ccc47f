package recordings

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// assemble is a piece's bytes as a request carries them.
func assemble(t *testing.T, r *bytes.Reader, p audioPiece) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := b.ReadFrom(p.reader(r)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSplitWAV: a long WAV comes apart in valid WAV files within the
// bound, covering its samples once, in order, each starting where the
// one before ends.
func TestSplitWAV(t *testing.T) {
	file := wavFile(10, 8000) // 160,000 bytes of samples
	r := bytes.NewReader(file)
	if _, ok, err := splitAudio(FormatWAV, r, int64(len(file)), int64(len(file))); ok || err != nil {
		t.Fatalf("a file within the bound was cut: %v", err)
	}
	const max = 40_000
	pieces, ok, err := splitAudio(FormatWAV, r, int64(len(file)), max)
	if err != nil || !ok || len(pieces) != 5 {
		t.Fatalf("%d pieces, %v, %v; want 5", len(pieces), ok, err)
	}
	next, start := int64(44), 0.0
	for i, p := range pieces {
		b := assemble(t, r, p)
		if int64(len(b)) > max || p.off != next || math.Abs(p.start-start) > 1e-9 {
			t.Fatalf("piece %d: %d bytes at %d (want %d), start %v (want %v)", i, len(b), p.off, next, p.start, start)
		}
		f, err := Detect(b[:HeadSize])
		if err != nil || f != FormatWAV {
			t.Fatalf("piece %d is no WAV: %v", i, err)
		}
		d, err := Duration(f, bytes.NewReader(b), int64(len(b)))
		if err != nil || math.Abs(d-float64(p.n)/16000) > 1e-9 {
			t.Fatalf("piece %d lasts %v, %v; want %v", i, d, err, float64(p.n)/16000)
		}
		next, start = p.off+p.n, start+d
	}
	if next != int64(len(file)) || math.Abs(start-10) > 1e-9 {
		t.Fatalf("the pieces end at byte %d, %v s; want %d, 10 s", next, start, len(file))
	}
	if _, _, err := splitAudio(FormatWAV, r, int64(len(file)), 10_000); err == nil {
		t.Error("pieces under a second were cut")
	}
}

// TestSplitWAVAtSilence: a cut falls in the quiet moment before the
// bound, not in the middle of a sound.
func TestSplitWAVAtSilence(t *testing.T) {
	const rate = 8000
	file := wavFile(6, rate)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 44; i+1 < len(file); i += 2 {
		binary.LittleEndian.PutUint16(file[i:], uint16(int16(rng.IntN(20000)-10000)))
	}
	// Silence from 1.50 to 1.56 s; the bound falls at about 2.4 s.
	for i := 44 + int(1.50*rate)*2; i < 44+int(1.56*rate)*2; i++ {
		file[i] = 0
	}
	r := bytes.NewReader(file)
	pieces, _, err := splitAudio(FormatWAV, r, int64(len(file)), 44+int64(2.4*rate*2))
	if err != nil || len(pieces) < 2 {
		t.Fatalf("%d pieces, %v", len(pieces), err)
	}
	if cut := pieces[1].start; cut < 1.50 || cut > 1.56 {
		t.Errorf("cut at %.3f s, not in the silence at 1.50–1.56 s", cut)
	}
	if pieces[0].n%2 != 0 {
		t.Errorf("cut inside a sample: %d bytes", pieces[0].n)
	}
}

// TestSplitMP3: pieces end on frame boundaries within the bound and start
// where the frames before them end in time; the ID3 tag and the
// trailing ID3v1 tag are left out.
func TestSplitMP3(t *testing.T) {
	file := mp3Frames(200, true) // 20 bytes of ID3, 201 frames of 417 bytes, a 128-byte tag
	r := bytes.NewReader(file)
	pieces, ok, err := splitAudio(FormatMP3, r, int64(len(file)), 10_000)
	if err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
	perPiece := 10_000 / 417 // 23 frames
	frames := 0
	for i, p := range pieces {
		if p.n > 10_000 || p.n%417 != 0 || p.off != 20+int64(frames*417) || len(p.header) != 0 {
			t.Fatalf("piece %d: %d bytes at %d", i, p.n, p.off)
		}
		if want := float64(frames*1152) / 44100; math.Abs(p.start-want) > 1e-9 {
			t.Fatalf("piece %d starts at %v s, want %v", i, p.start, want)
		}
		if i > 0 { // the first carries the Info header, which counts every frame
			b := assemble(t, r, p)
			if d, err := Duration(FormatMP3, bytes.NewReader(b), int64(len(b))); err != nil ||
				math.Abs(d-float64(p.n/417*1152)/44100) > 1e-9 {
				t.Fatalf("piece %d lasts %v, %v", i, d, err)
			}
		}
		if i < len(pieces)-1 && p.n != int64(perPiece*417) {
			t.Fatalf("piece %d holds %d frames, want %d", i, p.n/417, perPiece)
		}
		frames += int(p.n / 417)
	}
	if frames != 201 {
		t.Fatalf("the pieces hold %d frames, want 201", frames)
	}
	// A format that cannot be cut goes whole.
	if _, ok, err := splitAudio(FormatM4A, r, int64(len(file)), 10_000); ok || err != nil {
		t.Errorf("an M4A was cut: %v", err)
	}
}

// TestSplitMP3Junk: junk inside the stream is stepped over, the frames
// after it in a piece of their own at the right time; junk the stream
// never comes back from is an error, not a silently shorter transcript.
func TestSplitMP3Junk(t *testing.T) {
	frames := mp3Frames(100, false) // 20 bytes of ID3, 100 frames, a 128-byte tag
	body := frames[20 : 20+100*417]
	file := append([]byte{}, frames[:20]...)
	file = append(file, body[:40*417]...)
	file = append(file, bytes.Repeat([]byte{0xFF, 0x00, 0x12}, 700)...) // 2,100 bytes, stray sync bytes included
	file = append(file, body[40*417:]...)
	file = append(file, frames[20+100*417:]...)
	r := bytes.NewReader(file)
	pieces, err := splitMP3(r, int64(len(file)), 1<<20)
	if err != nil || len(pieces) != 2 {
		t.Fatalf("%d pieces, %v; want 2 around the junk", len(pieces), err)
	}
	if pieces[0].n != 40*417 || pieces[1].off != 20+40*417+2100 || pieces[1].n != 60*417 ||
		math.Abs(pieces[1].start-float64(40*1152)/44100) > 1e-9 {
		t.Fatalf("pieces %+v", pieces)
	}
	big := append(append(append([]byte{}, frames[:20+10*417]...), make([]byte, 200<<10)...), body[10*417:]...)
	if _, err := splitMP3(bytes.NewReader(big), int64(len(big)), 1<<20); err == nil {
		t.Error("200 KiB of junk mid-stream was taken for the end of the file")
	}
}

// TestSplitWAVShape: a stereo WAV whose format chunk has an odd size (and
// so a pad byte) comes apart in valid files, every cut on a sample frame,
// with pieces shorter than the two seconds the quiet search looks over.
func TestSplitWAVShape(t *testing.T) {
	const rate, secs = 8000, 6
	var b bytes.Buffer
	n := rate * secs * 4
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+17+1+8+n))
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(17))
	for _, v := range []uint16{1, 2} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	binary.Write(&b, binary.LittleEndian, uint32(rate))
	binary.Write(&b, binary.LittleEndian, uint32(rate*4))
	for _, v := range []uint16{4, 16} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.Write([]byte{0, 0}) // the 17th byte and the pad
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, uint32(n))
	rng := rand.New(rand.NewPCG(3, 4))
	for range n / 2 {
		binary.Write(&b, binary.LittleEndian, int16(rng.IntN(2000)-1000))
	}
	file := b.Bytes()
	r := bytes.NewReader(file)
	// About 1.5 s a piece; 49,956 bytes of samples, whose half is no
	// whole number of sample frames.
	pieces, _, err := splitAudio(FormatWAV, r, int64(len(file)), 50_002)
	if err != nil || len(pieces) < 4 {
		t.Fatalf("%d pieces, %v", len(pieces), err)
	}
	total := 0.0
	for i, p := range pieces {
		piece := assemble(t, r, p)
		if p.n%4 != 0 || len(piece) > 50_002 || math.Abs(p.start-total) > 1e-9 {
			t.Fatalf("piece %d: %d bytes of samples, %d in all, start %v (want %v)", i, p.n, len(piece), p.start, total)
		}
		d, err := Duration(FormatWAV, bytes.NewReader(piece), int64(len(piece)))
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		total += d
	}
	if math.Abs(total-secs) > 1e-9 {
		t.Errorf("the pieces last %v s, want %d", total, secs)
	}
}
