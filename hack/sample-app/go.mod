module github.com/moatsec/moat/hack/sample-app

go 1.22

require (
	golang.org/x/text v0.3.7
	gopkg.in/yaml.v3 v3.0.0-20210107192922-496545a6307b
)
