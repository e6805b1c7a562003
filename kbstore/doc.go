// Package kbstore is the knowledge base of seed §4.2.2 kept in bbolt: tags,
// architectures (host models with power curves), flavors and hosts, with
// validation, YAML import/export and the embedded default KB.
package kbstore
