// Package procstat reads the fields of a Linux /proc/[pid]/stat line (or
// a thread's, under task/ or thread-self), numbered as in proc(5).
package procstat

import (
	"bytes"
	"fmt"
	"strconv"
)

// Field is field n of a stat line, numbered from 1 as in proc(5); n must
// be 3 or more. The command (field 2) is in parentheses and may itself
// hold spaces and parentheses, so fields are counted after its last ')'.
func Field(stat []byte, n int) ([]byte, error) {
	if n < 3 {
		return nil, fmt.Errorf("procstat: field %d: only fields from 3 on are read", n)
	}
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("procstat: no command in %q", stat)
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) <= n-3 {
		return nil, fmt.Errorf("procstat: no field %d in %q", n, stat)
	}
	return fields[n-3], nil
}

// Int is field n of a stat line as an integer.
func Int(stat []byte, n int) (int64, error) {
	f, err := Field(stat, n)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(f), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("procstat: field %d: %w", n, err)
	}
	return v, nil
}
