// Package jsonedit applies a decision's changes to the JSON document they were decided on,
// so that a rewrite loses nothing: config.json and an Exec's process are JSON that a newer
// containerd may fill with fields the runtime-spec version isoguard is built with does not
// know, and re-serialising the Go struct would drop them.
//
// Rewrite takes the original bytes, the value the decision saw (decoded from those bytes)
// and the value it wants; what differs between the two values' encodings is applied to the
// original document, leaf by leaf, and nothing else is touched.
package jsonedit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/containerd/errdefs"
)

// Rewrite returns orig with the differences between before and after applied. before is
// what orig decodes to (the struct the decision was made on), after the decided value.
// Objects are changed key by key, arrays element by element when their lengths agree and
// replaced whole otherwise; numbers in orig keep their spelling.
func Rewrite(orig []byte, before, after any) ([]byte, error) {
	doc, err := decode(orig)
	if err != nil {
		return nil, fmt.Errorf("the document to rewrite: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	b, err := encodeTree(before)
	if err != nil {
		return nil, err
	}
	a, err := encodeTree(after)
	if err != nil {
		return nil, err
	}
	doc = apply(doc, b, a)
	return json.Marshal(doc)
}

func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

func encodeTree(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return decode(data)
}

// apply changes doc where before and after differ, and returns it.
func apply(doc, before, after any) any {
	if reflect.DeepEqual(before, after) {
		return doc
	}
	switch b := before.(type) {
	case map[string]any:
		a, ok := after.(map[string]any)
		d, dok := doc.(map[string]any)
		if !ok || !dok {
			return after
		}
		for k, av := range a {
			bv, had := b[k]
			if !had {
				d[k] = av
				continue
			}
			d[k] = apply(d[k], bv, av)
		}
		for k := range b {
			if _, kept := a[k]; !kept {
				delete(d, k)
			}
		}
		return d
	case []any:
		a, ok := after.([]any)
		d, dok := doc.([]any)
		if !ok || !dok || len(a) != len(b) || len(d) != len(b) {
			return after
		}
		for i := range a {
			d[i] = apply(d[i], b[i], a[i])
		}
		return d
	}
	return after
}
