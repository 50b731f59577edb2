package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// LoadFiles parses and validates policy files. It returns every policy when
// all files are valid, and otherwise every problem of every file.
func LoadFiles(paths ...string) ([]RuntimePolicy, Problems) {
	var (
		all      []RuntimePolicy
		problems Problems
	)
	seen := map[string]Source{}
	for _, p := range paths {
		data, err := readBounded(p)
		if err != nil {
			problems = append(problems, Problem{File: p, Message: err.Error()})
			continue
		}
		pols, probs := Parse(p, data)
		problems = append(problems, probs...)
		for _, pol := range pols {
			if first, dup := seen[pol.Name]; dup && pol.Name != "" {
				problems = append(problems, Problem{File: p, Line: pol.Source.Line, Path: "metadata.name",
					Message: fmt.Sprintf("policy %q is already defined at %s:%d", pol.Name, first.File, first.Line)})
				continue
			}
			seen[pol.Name] = pol.Source
			all = append(all, pol)
		}
	}
	if len(problems) > 0 {
		return nil, problems.sorted()
	}
	return all, nil
}

// maxDocumentBytes bounds one policy file.
const maxDocumentBytes = 4 << 20

// readBounded reads a policy file, refusing one larger than
// maxDocumentBytes without reading it whole.
func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDocumentBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDocumentBytes {
		return nil, fmt.Errorf("file is larger than %d bytes", maxDocumentBytes)
	}
	return data, nil
}

// Parse reads the policies of one YAML file (several documents may be
// separated by ---). name is used in problems. Parsing never stops at the
// first problem.
func Parse(name string, data []byte) ([]RuntimePolicy, Problems) {
	if len(data) > maxDocumentBytes {
		return nil, Problems{{File: name, Line: 1, Message: fmt.Sprintf("file is larger than %d bytes", maxDocumentBytes)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	w := &walker{file: name}
	var pols []RuntimePolicy
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.problems = append(w.problems, Problem{File: name, Line: yamlErrorLine(err.Error()), Message: "not valid YAML: " + err.Error()})
			break
		}
		if len(doc.Content) == 0 {
			continue // an empty document
		}
		if pol, ok := w.policy(doc.Content[0]); ok {
			pols = append(pols, pol)
		}
	}
	if len(pols) == 0 && len(w.problems) == 0 {
		w.problems = append(w.problems, Problem{File: name, Line: 1, Message: "no RuntimePolicy document in the file"})
	}
	return pols, w.problems.sorted()
}

// walker checks a document against the schema, field by field, and keeps
// every problem with its line and field path.
type walker struct {
	file     string
	problems Problems
}

func (w *walker) fail(n *yaml.Node, path, format string, args ...any) {
	w.problems = append(w.problems, Problem{File: w.file, Line: n.Line, Path: path, Message: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// fields walks a mapping: unknown and repeated keys are problems, required
// keys that are missing are problems, and each known key's value goes to
// its handler.
func (w *walker) fields(n *yaml.Node, path string, required []string, handlers map[string]func(*yaml.Node, string)) bool {
	if n.Kind != yaml.MappingNode {
		w.fail(n, path, "must be a mapping, not %s", kindName(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		h, ok := handlers[k.Value]
		switch {
		case !ok:
			w.fail(k, p, "unknown field")
		case seen[k.Value]:
			w.fail(k, p, "given twice")
		default:
			seen[k.Value] = true
			h(v, p)
		}
	}
	for _, r := range required {
		if !seen[r] {
			w.fail(n, join(path, r), "required")
		}
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "empty"
	case "!!int", "!!float":
		return "a number (" + n.Value + ")"
	case "!!bool":
		return "a boolean (" + n.Value + ")"
	case "!!str":
		return "a string (" + strconv.Quote(n.Value) + ")"
	}
	return n.ShortTag() + " (" + strconv.Quote(n.Value) + ")"
}

func (w *walker) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		w.fail(n, path, "must be a string, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (w *walker) boolean(n *yaml.Node, path string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		w.fail(n, path, "must be true or false, not %s", kindName(n))
		return false
	}
	return n.Value == "true"
}

// list walks a list of scalars, checking each with check (which may be nil).
func (w *walker) list(n *yaml.Node, path string, check func(*yaml.Node, string) (string, bool)) []string {
	if n.Kind != yaml.SequenceNode {
		w.fail(n, path, "must be a list, not %s", kindName(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		if v, ok := check(item, p); ok {
			out = append(out, v)
		}
	}
	return out
}

func (w *walker) stringMap(n *yaml.Node, path string) map[string]string {
	out := map[string]string{}
	handlers := map[string]func(*yaml.Node, string){}
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		handlers[key] = func(v *yaml.Node, p string) {
			if key == "" {
				w.fail(n.Content[i], p, "empty label key")
			}
			if s, ok := w.str(v, p); ok {
				out[key] = s
			}
		}
	}
	w.fields(n, path, nil, handlers)
	return out
}
