package tosca

import "strings"

// order returns the node templates with every requirement's target before
// the node that requires it, ties in template order; a dependency cycle is
// an error at the requirement that closes it.
func (t *Template) order() ([]*Node, *Error) {
	const (
		white = iota
		grey
		black
	)
	color := make(map[*Node]int, len(t.Nodes))
	var out []*Node
	var stack []*Node
	var visit func(n *Node) *Error
	visit = func(n *Node) *Error {
		color[n] = grey
		stack = append(stack, n)
		for _, r := range n.Requirements {
			switch color[r.Target] {
			case grey:
				var names []string
				for i := len(stack) - 1; i >= 0; i-- {
					names = append([]string{stack[i].Name}, names...)
					if stack[i] == r.Target {
						break
					}
				}
				names = append(names, r.Target.Name)
				return r.loc.errorf("dependency cycle: %s", strings.Join(names, " -> "))
			case white:
				if err := visit(r.Target); err != nil {
					return err
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		out = append(out, n)
		return nil
	}
	for _, n := range t.Nodes {
		if color[n] == white {
			if err := visit(n); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
