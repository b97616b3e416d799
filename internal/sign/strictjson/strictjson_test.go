package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const depth = 4
	for in, ok := range map[string]bool{
		`1`: true, `"s"`: true, `null`: true, ` {"a":{"a":1},"b":[{"a":1},{"a":2}]} `: true, `[[],{}]`: true,
		`{"a":1,"a":1}`: false, `{"a":{"b":1,"b":1}}`: false, `[{"x":1,"x":2}]`: false,
		`{"a":1,"\u0061":2}`: false, `{"a":1,"a":2} `: false,
		`1 1`: false, `{} {}`: false, `{}x`: false, ``: false, ` `: false,
		`{`: false, `{"a":1`: false, `[1,`: false, `{"a"}`: false, `{1:2}`: false, `]`: false,
		strings.Repeat("[", depth) + strings.Repeat("]", depth):     true,
		strings.Repeat("[", depth+1) + strings.Repeat("]", depth+1): false,
		`{"a":{"b":{"c":{}}}}`:       true,
		`{"a":{"b":{"c":{"d":1}}}}`:  true,
		`{"a":{"b":{"c":{"d":{}}}}}`: false,
		`{"n":1E700}`:                false,
		`[-1e308, 1.5e-400]`:         true,
	} {
		if err := Check([]byte(in), depth); (err == nil) != ok {
			t.Errorf("Check(%.40q) = %v", in, err)
		}
	}
}

// FuzzCheck checks that whatever Check accepts, encoding/json reads as one value.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}],"c":"d"}`, `{"a":1,"a":2}`, `[[[[[]]]]]`, `1 2`, `{"a":1`, `"\u0061"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if Check(b, 8) != nil {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", b, err)
		}
	})
}
