package extract

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nodus-os/nodus/internal/nodus"
)

// writeCSV writes each record after the header as a block of
// "column: value" lines, so a chunk of rows still names its columns.
// Empty values are left out.
func writeCSV(w *writer, src string, lim Limits) error {
	comma, ok := csvDelimiter(src[:min(len(src), HeadSize)], len(src) <= HeadSize)
	if !ok {
		comma = ','
	}
	r := csv.NewReader(strings.NewReader(src))
	r.Comma = comma
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	var header []string
	for rows := 0; ; rows++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nodus.Errorf(nodus.EINVALID, "the CSV file is malformed on line %d: %v", pe.Line, pe.Err)
			}
			return err
		}
		if rows >= lim.MaxRows {
			return nodus.Errorf(nodus.ETOOLARGE, "the CSV file has more than %d rows", lim.MaxRows)
		}
		if header == nil {
			header = make([]string, len(rec))
			for i, h := range rec {
				header[i] = cleanLine(h, 200)
				if header[i] == "" {
					header[i] = fmt.Sprintf("column %d", i+1)
				}
			}
			continue
		}
		w.block()
		for i, v := range rec {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			name := fmt.Sprintf("column %d", i+1)
			if i < len(header) {
				name = header[i]
			}
			w.WriteString(name + ": " + strings.ReplaceAll(v, "\n", " ") + "\n")
		}
		if w.err != nil {
			return w.err
		}
	}
}
