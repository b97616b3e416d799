// Command sample-app is part of moat's sample image: a Go program built against old module
// versions with known advisories, so that the inventory (and later vulnerability matching) has
// real Go dependencies to find.
package main

import (
	"fmt"

	"golang.org/x/text/language"
	"gopkg.in/yaml.v3"
)

func main() {
	var v map[string]any
	if err := yaml.Unmarshal([]byte("greeting: hello"), &v); err != nil {
		panic(err)
	}
	fmt.Println(language.English, v["greeting"])
}
