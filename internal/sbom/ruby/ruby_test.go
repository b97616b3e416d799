package ruby

import (
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const rackSpec = `# -*- encoding: utf-8 -*-
# stub: rack 3.0.8 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "3.0.8"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.metadata = { "bug_tracker_uri" => "https://github.com/rack/rack/issues", "changelog_uri" => "https://github.com/rack/rack/blob/main/CHANGELOG.md", "documentation_uri" => "https://rubydoc.info/github/rack/rack", "source_code_uri" => "https://github.com/rack/rack" } if s.respond_to? :metadata=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.date = "2023-06-14"
  s.description = "Rack provides a minimal, modular and adaptable interface for developing\nweb applications in Ruby. By wrapping HTTP requests and responses in\nthe simplest way possible, it unifies and distills the API for web\nservers, web frameworks, and software in between (the so-called\nmiddleware) into a single method call.\n".freeze
  s.email = "leah@vuxu.org".freeze
  s.extra_rdoc_files = ["README.md".freeze, "CHANGELOG.md".freeze, "CONTRIBUTING.md".freeze]
  s.files = ["CHANGELOG.md".freeze, "CONTRIBUTING.md".freeze, "MIT-LICENSE".freeze, "README.md".freeze]
  s.homepage = "https://github.com/rack/rack".freeze
  s.licenses = ["MIT".freeze]
  s.required_ruby_version = Gem::Requirement.new(">= 2.4.0".freeze)
  s.rubygems_version = "3.4.10".freeze
  s.summary = "A modular Ruby webserver interface.".freeze

  s.installed_by_version = "3.4.10" if s.respond_to? :installed_by_version

  s.specification_version = 4

  s.add_development_dependency(%q<minitest>.freeze, ["~> 5.0"])
  s.add_development_dependency(%q<minitest-global_expectations>.freeze, [">= 0"])
  s.add_development_dependency(%q<bundler>.freeze, [">= 0"])
  s.add_development_dependency(%q<rake>.freeze, [">= 0"])
end
`

// railsSpec is the shape RubyGems 1.8 wrote in the Rails 3 era.
const railsSpec = `# -*- encoding: utf-8 -*-

Gem::Specification.new do |s|
  s.name = "rails"
  s.version = "3.2.22.5"

  s.required_rubygems_version = Gem::Requirement.new(">= 1.8.11") if s.respond_to? :required_rubygems_version=
  s.authors = ["David Heinemeier Hansson"]
  s.date = "2016-09-14"
  s.description = "Ruby on Rails is a full-stack web framework optimized for programmer happiness and sustainable productivity."
  s.email = "david@loudthinking.com"
  s.homepage = "http://www.rubyonrails.org"
  s.licenses = ["MIT"]
  s.require_paths = ["lib"]
  s.required_ruby_version = Gem::Requirement.new(">= 1.8.7")
  s.rubygems_version = "1.8.23"
  s.summary = "Full-stack web application framework."

  if s.respond_to? :specification_version then
    s.specification_version = 3

    if Gem::Version.new(Gem::VERSION) >= Gem::Version.new('1.2.0') then
      s.add_runtime_dependency(%q<activesupport>, ["= 3.2.22.5"])
      s.add_runtime_dependency(%q<actionpack>, ["= 3.2.22.5"])
      s.add_runtime_dependency(%q<bundler>, ["< 2.0", "~> 1.0"])
    else
      s.add_dependency(%q<activesupport>, ["= 3.2.22.5"])
    end
  else
    s.add_dependency(%q<activesupport>, ["= 3.2.22.5"])
  end
end
`

// rakeSpec is the %q{} style of RubyGems 1.3.
const rakeSpec = `# -*- encoding: utf-8 -*-

Gem::Specification.new do |s|
  s.name = %q{rake}
  s.version = "0.8.7"

  s.required_rubygems_version = Gem::Requirement.new(">= 0") if s.respond_to? :required_rubygems_version=
  s.authors = [%q{Jim Weirich}]
  s.date = %q{2009-05-15}
  s.license = %q{MIT}
  s.rubygems_version = %q{1.3.7}
end
`

const nokogiriSpec = `# -*- encoding: utf-8 -*-
# stub: nokogiri 1.15.4 x86_64-linux lib

Gem::Specification.new do |s|
  s.name = "nokogiri".freeze
  s.version = "1.15.4"
  s.platform = "x86_64-linux".freeze

  s.licenses = ["MIT".freeze, "Apache-2.0".freeze]
end
`

const defaultSpec = `# -*- encoding: utf-8 -*-
# stub: json 2.6.3 ruby lib ext

Gem::Specification.new do |s|
  s.name = "json".freeze
  s.version = "2.6.3"
  s.licenses = ["Ruby".freeze]
end
`

var cases = []sbomtest.Case{
	{
		Name: "bundle rack", Path: "usr/local/bundle/specifications/rack-3.0.8.gemspec",
		Content: []byte(rackSpec), WantCount: 1,
		Want: []sbom.Package{{Name: "rack", Version: "3.0.8", Type: sbom.TypeGem, Licenses: []string{"MIT"}}},
	},
	{
		Name: "rails era", Path: "var/lib/gems/1.9.1/specifications/rails-3.2.22.5.gemspec",
		Content: []byte(railsSpec), WantCount: 1,
		Want: []sbom.Package{{Name: "rails", Version: "3.2.22.5", Type: sbom.TypeGem, Licenses: []string{"MIT"}}},
	},
	{
		Name: "percent q", Path: "usr/lib/ruby/gems/1.8/specifications/rake-0.8.7.gemspec",
		Content: []byte(rakeSpec), WantCount: 1,
		Want: []sbom.Package{{Name: "rake", Version: "0.8.7", Type: sbom.TypeGem, Licenses: []string{"MIT"}}},
	},
	{
		Name: "platform gem", Path: "usr/local/bundle/specifications/nokogiri-1.15.4-x86_64-linux.gemspec",
		Content: []byte(nokogiriSpec), WantCount: 1,
		Want: []sbom.Package{{Name: "nokogiri", Version: "1.15.4", Type: sbom.TypeGem, Licenses: []string{"MIT", "Apache-2.0"},
			Metadata: map[string]string{"platform": "x86_64-linux"}}},
	},
	{
		Name: "default gem", Path: "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.3.gemspec",
		Content: []byte(defaultSpec), WantCount: 1,
		Want: []sbom.Package{{Name: "json", Version: "2.6.3", Type: sbom.TypeGem, Metadata: map[string]string{"default": "true"}}},
	},
	{
		Name: "name from file", Path: "var/lib/gems/3.1.0/specifications/net-http-0.4.1.gemspec",
		Content:   []byte("Gem::Specification.new do |s|\n  s.name = NAME\n  s.version = Net::HTTP::VERSION\nend\n"),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "net-http", Version: "0.4.1", Type: sbom.TypeGem}},
	},
	{
		Name: "file name disagrees", Path: "usr/local/bundle/specifications/rack-3.0.7.gemspec",
		Content: []byte(rackSpec), WantCount: 1, WantWarning: true,
		Want: []sbom.Package{{Name: "rack", Version: "3.0.8", Type: sbom.TypeGem}},
	},
	{Name: "not a spec", Path: "usr/local/bundle/specifications/rack-3.0.8.gemspec", Content: []byte("\x00\x01binary"), WantErr: true},
	{
		Name: "unreadable spec", Path: "usr/local/bundle/specifications/weird.gemspec",
		Content: []byte("Gem::Specification.new do |s|\nend\n"), WantErr: true,
	},
	{Name: "source gemspec", Path: "usr/local/bundle/gems/rack-3.0.8/rack.gemspec", NoMatch: true},
	{Name: "bundler git gemspec", Path: "usr/local/bundle/bundler/gems/rails-0c4e5a2/rails.gemspec", NoMatch: true},
	{Name: "cached gem", Path: "usr/local/bundle/cache/rack-3.0.8.gem", NoMatch: true},
	{Name: "bare suffix", Path: "usr/local/bundle/specifications/.gemspec", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }

func TestSplitFullName(t *testing.T) {
	tests := []struct {
		full, platform, name, version string
		ok                            bool
	}{
		{"rack-3.0.8", "", "rack", "3.0.8", true},
		{"rack-test-2.1.0", "", "rack-test", "2.1.0", true},
		{"aws-sdk-s3-1.142.0", "", "aws-sdk-s3", "1.142.0", true},
		{"nokogiri-1.15.4-x86_64-linux", "x86_64-linux", "nokogiri", "1.15.4", true},
		{"nokogiri-1.15.4-x86_64-linux", "", "nokogiri", "1.15.4", true},
		{"ffi-1.16.3-x64-mingw-ucrt", "", "ffi", "1.16.3", true},
		{"rails-7.1.0.rc1", "", "rails", "7.1.0.rc1", true},
		{"noversion", "", "", "", false},
		{"-1.0", "", "", "", false},
	}
	for _, tt := range tests {
		name, version, ok := splitFullName(tt.full, tt.platform)
		if name != tt.name || version != tt.version || ok != tt.ok {
			t.Errorf("splitFullName(%q, %q) = %q, %q, %v; want %q, %q, %v", tt.full, tt.platform, name, version, ok, tt.name, tt.version, tt.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, p := range []string{
		"specifications/rack-3.0.8.gemspec",
		"usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.3.gemspec",
		"root/.gem/ruby/3.2.0/specifications/pry-0.14.2.gemspec",
	} {
		if !New().Match(sbom.FileInfo{Path: p}) {
			t.Errorf("Match(%q) = false, want true", p)
		}
	}
	if New().Match(sbom.FileInfo{Path: "default/json-2.6.3.gemspec"}) {
		t.Error("Match accepted default/ outside specifications/")
	}
}
