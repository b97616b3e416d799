// Package strictjson checks that signed JSON reads the same in every parser before moat
// decodes it with encoding/json.
//
// JSON parsers disagree on documents that the JSON specification leaves open: encoding/json
// keeps the last of two equal keys where others keep the first, and reads on after a value
// that others stop at. A signed claim that two verifiers read differently is an attack, so
// everything moat reads from a registry and then trusts passes Check first.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Check reports whether b is exactly one complete JSON value with nesting at most maxDepth,
// no object that has a key twice, at any depth, and no number beyond float64's range.
func Check(b []byte, maxDepth int) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    bool // in an object: the next token is a key or the closing brace
	}
	var stack []*frame
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 {
			if values++; values > 1 {
				return errors.New("more than one JSON value")
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].key {
			top := stack[n-1]
			if k, ok := tok.(string); ok {
				if _, dup := top.keys[k]; dup {
					return fmt.Errorf("duplicate key %q", k)
				}
				top.keys[k] = struct{}{}
				top.key = false
				continue
			}
			// Only the closing brace can stand where a key is expected; the decoder
			// rejects anything else.
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) >= maxDepth {
				return errors.New("JSON nested too deeply")
			}
			f := &frame{object: tok == json.Delim('{'), key: true}
			if f.object {
				f.keys = map[string]struct{}{}
			}
			stack = append(stack, f)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].key = true
			}
		default:
			// A number beyond float64 (1E700) is an error to encoding/json and infinity or a
			// big number to other parsers: not one reading.
			if num, ok := tok.(json.Number); ok {
				if _, err := strconv.ParseFloat(string(num), 64); err != nil {
					return fmt.Errorf("number %.40s is out of range", num)
				}
			}
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].key = true
			}
		}
	}
	if len(stack) != 0 {
		// encoding/json's tokenizer reports the end of an unfinished value as io.EOF.
		return io.ErrUnexpectedEOF
	}
	if values != 1 {
		return errors.New("no JSON value")
	}
	return nil
}
