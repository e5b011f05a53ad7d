package policy

// Where a field is in a policy file: field paths ("untrusted.mounts.allowedHostPaths[1]")
// rendered for errors, and their lines in the parsed YAML document, including the lines of
// yaml's own decoding errors.

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fieldError is a FieldError for a field path ("untrusted", "mounts", "allowedHostPaths", 1).
func (f *File) fieldError(path []any, problem string) *FieldError {
	return &FieldError{Line: f.line(path...), Field: fieldPath(path), Problem: problem}
}

// where renders a field path as "line N: field a.b[2].c" (or "field a.b[2].c" when the
// file was not parsed or the field is absent from it).
func (f *File) where(path ...any) string {
	return strings.TrimSuffix(f.fieldError(path, "").Error(), ": ")
}

func fieldPath(path []any) string {
	var b strings.Builder
	for i, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// line finds the line of a field in the parsed document: the value's line, or for a
// missing value the closest enclosing node's line. yaml places an empty value that ends a
// file without a final line break (a document of just "---") on the line after the last
// one; such a value is on the last line.
func (f *File) line(path ...any) int {
	return min(f.nodeLine(path...), f.lines)
}

func (f *File) nodeLine(path ...any) int {
	if f.root == nil || len(f.root.Content) == 0 {
		return 0
	}
	n := f.root.Content[0]
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}

// typeErrors turns yaml.v3's decoding errors, which it gives only as text "line N:
// <problem>", into FieldErrors, finding each field by its line in the node tree.
func typeErrors(root *yaml.Node, te *yaml.TypeError) error {
	errs := make([]*FieldError, 0, len(te.Errors))
	for _, e := range te.Errors {
		fe := &FieldError{Problem: e}
		if rest, ok := strings.CutPrefix(e, "line "); ok {
			if n, problem, ok := strings.Cut(rest, ":"); ok {
				if line, err := strconv.Atoi(n); err == nil {
					fe.Line, fe.Problem = line, strings.TrimSpace(problem)
					fe.Field = pathAtLine(root, line)
				}
			}
		}
		errs = append(errs, fe)
	}
	return invalid(errs)
}

// pathAtLine returns the field path ("a.b[2].c") of the first mapping key or sequence item
// on a line, or "".
func pathAtLine(n *yaml.Node, line int) string {
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if k.Line == line {
					return p
				}
				if r := walk(v, p); r != "" {
					return r
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if c.Line == line && c.Kind == yaml.ScalarNode {
					return p
				}
				if r := walk(c, p); r != "" {
					return r
				}
			}
		}
		return ""
	}
	return walk(n, "")
}
