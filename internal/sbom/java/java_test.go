package java

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

// entry is one file of a test archive.
type entry struct {
	name  string
	body  []byte
	store bool // write uncompressed, as Spring Boot does for BOOT-INF/lib jars
}

// archive builds a zip file; prefix is written before it, like the launch script of a
// fully executable Spring Boot jar.
func archive(tb testing.TB, prefix string, entries ...entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.WriteString(prefix)
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		method := zip.Deflate
		if e.store {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		if err != nil {
			tb.Fatalf("adding %s: %v", e.name, err)
		}
		if _, err := w.Write(e.body); err != nil {
			tb.Fatalf("writing %s: %v", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatalf("closing archive: %v", err)
	}
	return buf.Bytes()
}

// manifest writes a MANIFEST.MF the way the jar tool does: CRLF line ends, lines cut at 72
// bytes and continued after one space.
func manifest(attrs ...string) []byte {
	var b bytes.Buffer
	for _, a := range attrs {
		width := 72
		for len(a) > width {
			b.WriteString(a[:width] + "\r\n ")
			a = a[width:]
			width = 71
		}
		b.WriteString(a + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func pomProperties(group, artifact, version string) []byte {
	return []byte("#Created by Apache Maven 3.6.3\nversion=" + version + "\ngroupId=" + group + "\nartifactId=" + artifact + "\n")
}

func pomEntry(group, artifact, version string) entry {
	return entry{name: "META-INF/maven/" + group + "/" + artifact + "/pom.properties", body: pomProperties(group, artifact, version)}
}

const apacheLicense = "https://www.apache.org/licenses/LICENSE-2.0.txt"

func log4jCore(tb testing.TB) []byte {
	return archive(tb, "",
		entry{name: "META-INF/"},
		entry{name: "META-INF/MANIFEST.MF", body: manifest(
			"Manifest-Version: 1.0",
			"Bundle-License: "+apacheLicense,
			"Bundle-SymbolicName: org.apache.logging.log4j.core",
			"Built-By: rgoers",
			"Implementation-Vendor-Id: org.apache.logging.log4j",
			"Implementation-Title: Apache Log4j Core",
			"Implementation-Version: 2.14.1",
			"Bundle-Name: Apache Log4j Core",
			"Bundle-Version: 2.14.1",
			"Import-Package: com.conversantmedia.util.concurrent;resolution:=optional,com.fasterxml.jackson.annotation;version=\"[2.11,3)\";resolution:=optional,com.fasterxml.jackson.core;version=\"[2.11,3)\";resolution:=optional",
			"Bundle-Activator: org.apache.logging.log4j.core.osgi.Activator",
			"Multi-Release: true",
			"Created-By: Apache Maven Bundle Plugin",
		)},
		entry{name: "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
			body: []byte("#Created by Apache Maven 3.6.3\r\nversion=2.14.1\r\ngroupId=org.apache.logging.log4j\r\nartifactId=log4j-core\r\n")},
		entry{name: "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.xml", body: []byte("<project/>")},
		entry{name: "org/apache/logging/log4j/core/lookup/JndiLookup.class", body: []byte("\xca\xfe\xba\xbe\x00\x00\x00\x34")},
	)
}

func jacksonDatabind(tb testing.TB) []byte {
	return archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest(
			"Manifest-Version: 1.0",
			"Bundle-License: "+apacheLicense,
			"Bundle-SymbolicName: com.fasterxml.jackson.core.jackson-databind",
			"Implementation-Vendor-Id: com.fasterxml.jackson.core",
			"Implementation-Title: jackson-databind",
			"Implementation-Version: 2.13.0",
			"Bundle-Version: 2.13.0",
		)},
		pomEntry("com.fasterxml.jackson.core", "jackson-databind", "2.13.0"),
		entry{name: "com/fasterxml/jackson/databind/ObjectMapper.class", body: []byte("\xca\xfe\xba\xbe")},
	)
}

// zeros compresses well: the body of a zip bomb.
var zeros = make([]byte, 8<<20)

func testCases(tb testing.TB) []sbomtest.Case {
	tb.Helper()
	log4j := log4jCore(tb)
	jackson := jacksonDatabind(tb)
	commonsLang := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest("Manifest-Version: 1.0", "Bundle-SymbolicName: org.apache.commons.lang3", "Bundle-Version: 3.12.0")},
		pomEntry("org.apache.commons", "commons-lang3", "3.12.0"))
	springBoot := archive(tb, "#!/bin/bash\n# Spring Boot launch script\nexec java -jar \"$0\" \"$@\"\n",
		entry{name: "META-INF/MANIFEST.MF", body: manifest(
			"Manifest-Version: 1.0",
			"Spring-Boot-Classpath-Index: BOOT-INF/classpath.idx",
			"Implementation-Title: demo",
			"Implementation-Version: 0.0.1-SNAPSHOT",
			"Start-Class: com.example.demo.DemoApplication",
			"Spring-Boot-Classes: BOOT-INF/classes/",
			"Spring-Boot-Lib: BOOT-INF/lib/",
			"Spring-Boot-Version: 2.6.3",
			"Main-Class: org.springframework.boot.loader.JarLauncher",
		)},
		pomEntry("com.example", "demo", "0.0.1-SNAPSHOT"),
		entry{name: "BOOT-INF/classes/com/example/demo/DemoApplication.class", body: []byte("\xca\xfe\xba\xbe")},
		entry{name: "BOOT-INF/classpath.idx", body: []byte("- \"BOOT-INF/lib/jackson-databind-2.13.0.jar\"\n- \"BOOT-INF/lib/log4j-core-2.14.1.jar\"\n")},
		entry{name: "BOOT-INF/lib/jackson-databind-2.13.0.jar", body: jackson, store: true},
		entry{name: "BOOT-INF/lib/log4j-core-2.14.1.jar", body: log4j, store: true},
		entry{name: "BOOT-INF/lib/spring-boot-2.6.3.jar", body: archive(tb, "", pomEntry("org.springframework.boot", "spring-boot", "2.6.3")), store: true},
		entry{name: "org/springframework/boot/loader/JarLauncher.class", body: []byte("\xca\xfe\xba\xbe")},
	)
	war := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest("Manifest-Version: 1.0", "Created-By: Maven WAR Plugin 3.3.2")},
		pomEntry("com.acme", "shop", "1.4.2"),
		entry{name: "WEB-INF/web.xml", body: []byte("<web-app/>")},
		entry{name: "WEB-INF/lib/commons-lang3-3.12.0.jar", body: commonsLang},
		entry{name: "WEB-INF/lib/log4j-core-2.14.1.jar", body: log4j},
		entry{name: "WEB-INF/lib/commons-io-2.11.0.jar", body: archive(tb, "", entry{name: "org/apache/commons/io/IOUtils.class", body: []byte("\xca\xfe\xba\xbe")})},
		entry{name: "WEB-INF/lib/broken-1.0.jar", body: []byte("this jar was truncated")},
	)
	shaded := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest("Manifest-Version: 1.0", "Bundle-License: "+apacheLicense)},
		pomEntry("org.apache.hadoop", "hadoop-client-runtime", "3.3.4"),
		pomEntry("com.google.guava", "guava", "27.0-jre"),
		pomEntry("com.google.protobuf", "protobuf-java", "2.5.0"),
		pomEntry("commons-codec", "commons-codec", "1.15"),
		entry{name: "META-INF/maven/broken/broken/pom.properties", body: []byte("#no version here\ngroupId=broken\n")},
		// A copy of a shaded library also shipped whole: reported once.
		entry{name: "lib/commons-codec-1.15.jar", body: archive(tb, "", pomEntry("commons-codec", "commons-codec", "1.15")), store: true},
	)
	bomb := archive(tb, "",
		pomEntry("com.example", "bomb", "1.0"),
		entry{name: "BOOT-INF/lib/zeros-1.0.jar", body: zeros},
	)
	ear := archive(tb, "",
		pomEntry("com.acme", "shop-ear", "1.4.2"),
		entry{name: "lib/jackson-databind-2.13.0.jar", body: jackson},
		entry{name: "shop.war", body: archive(tb, "", entry{name: "WEB-INF/lib/log4j-core-2.14.1.jar", body: log4j, store: true})},
	)
	manifestOnly := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest(
			"Manifest-Version: 1.0",
			"Bundle-License: "+apacheLicense,
			"Bundle-SymbolicName: com.fasterxml.jackson.core.jackson-core",
			"Implementation-Title: Jackson-core",
			"Bundle-Name: Jackson-core",
			"Bundle-Version: 2.13.0",
		)},
		entry{name: "com/fasterxml/jackson/core/JsonParser.class", body: []byte("\xca\xfe\xba\xbe")},
	)
	nameOnly := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest("Manifest-Version: 1.0", "Created-By: 1.8.0_292 (Oracle Corporation)")},
		entry{name: "org/apache/commons/io/IOUtils.class", body: []byte("\xca\xfe\xba\xbe")},
	)
	jenkins := archive(tb, "",
		entry{name: "META-INF/MANIFEST.MF", body: manifest(
			"Manifest-Version: 1.0",
			"Long-Name: Jenkins Git plugin",
			"Group-Id: org.jenkins-ci.plugins",
			"Short-Name: git",
			"Plugin-Version: 4.11.0",
			"Jenkins-Version: 2.263.1",
		)},
		entry{name: "WEB-INF/lib/git.jar", body: archive(tb, "", entry{name: "hudson/plugins/git/GitSCM.class", body: []byte("\xca\xfe\xba\xbe")})},
	)
	deep := archive(tb, "", pomEntry("com.example", "level5", "1.0"))
	for i := 4; i >= 0; i-- {
		name := "level" + string(rune('0'+i))
		deep = archive(tb, "", pomEntry("com.example", name, "1.0"), entry{name: "lib/level-" + string(rune('0'+i+1)) + ".jar", body: deep, store: true})
	}

	mvn := func(name, version string, md map[string]string) sbom.Package {
		return sbom.Package{Name: name, Version: version, Type: sbom.TypeMaven, Metadata: md}
	}
	pom := map[string]string{"evidence": "pom.properties"}
	return []sbomtest.Case{
		{
			Name: "log4j-core", Path: "opt/app/lib/log4j-core-2.14.1.jar", Content: log4j, WantCount: 1,
			Want: []sbom.Package{{Name: "org.apache.logging.log4j:log4j-core", Version: "2.14.1", Type: sbom.TypeMaven,
				Licenses: []string{apacheLicense},
				Metadata: map[string]string{"evidence": "pom.properties", "groupId": "org.apache.logging.log4j", "artifactId": "log4j-core"}}},
		},
		{
			Name: "jackson-databind", Path: "usr/share/java/jackson-databind-2.13.0.jar", Content: jackson, WantCount: 1,
			Want: []sbom.Package{mvn("com.fasterxml.jackson.core:jackson-databind", "2.13.0", pom)},
		},
		{
			Name: "spring boot executable fat jar", Path: "app/demo-0.0.1-SNAPSHOT.jar", Content: springBoot, WantCount: 4,
			Want: []sbom.Package{
				mvn("com.example:demo", "0.0.1-SNAPSHOT", pom),
				mvn("com.fasterxml.jackson.core:jackson-databind", "2.13.0",
					map[string]string{"nestedPath": "demo-0.0.1-SNAPSHOT.jar!BOOT-INF/lib/jackson-databind-2.13.0.jar"}),
				mvn("org.apache.logging.log4j:log4j-core", "2.14.1",
					map[string]string{"nestedPath": "demo-0.0.1-SNAPSHOT.jar!BOOT-INF/lib/log4j-core-2.14.1.jar"}),
				mvn("org.springframework.boot:spring-boot", "2.6.3", nil),
			},
		},
		{
			Name: "war with a broken library", Path: "usr/local/tomcat/webapps/shop.war", Content: war, WantCount: 4, WantWarning: true,
			Want: []sbom.Package{
				mvn("com.acme:shop", "1.4.2", map[string]string{"evidence": "pom.properties"}),
				mvn("org.apache.commons:commons-lang3", "3.12.0", map[string]string{"nestedPath": "shop.war!WEB-INF/lib/commons-lang3-3.12.0.jar"}),
				mvn("org.apache.logging.log4j:log4j-core", "2.14.1", nil),
				mvn("commons-io", "2.11.0", map[string]string{"evidence": "filename", "artifactId": "commons-io",
					"nestedPath": "shop.war!WEB-INF/lib/commons-io-2.11.0.jar"}),
			},
		},
		{
			Name: "ear", Path: "opt/jboss/standalone/deployments/shop.ear", Content: ear, WantCount: 3,
			Want: []sbom.Package{
				mvn("com.acme:shop-ear", "1.4.2", nil),
				mvn("com.fasterxml.jackson.core:jackson-databind", "2.13.0", map[string]string{"nestedPath": "shop.ear!lib/jackson-databind-2.13.0.jar"}),
				mvn("org.apache.logging.log4j:log4j-core", "2.14.1", map[string]string{"nestedPath": "shop.ear!shop.war!WEB-INF/lib/log4j-core-2.14.1.jar"}),
			},
		},
		{
			Name: "shaded jar", Path: "opt/hadoop/share/hadoop/client/hadoop-client-runtime-3.3.4.jar", Content: shaded,
			WantCount: 4, WantWarning: true,
			Want: []sbom.Package{
				{Name: "org.apache.hadoop:hadoop-client-runtime", Version: "3.3.4", Type: sbom.TypeMaven, Licenses: []string{apacheLicense}},
				mvn("com.google.guava:guava", "27.0-jre", pom),
				mvn("com.google.protobuf:protobuf-java", "2.5.0", pom),
				mvn("commons-codec:commons-codec", "1.15", pom),
			},
		},
		{
			Name: "manifest only", Path: "opt/lib/jackson-core.jar", Content: manifestOnly, WantCount: 1,
			Want: []sbom.Package{{Name: "com.fasterxml.jackson.core:jackson-core", Version: "2.13.0", Type: sbom.TypeMaven,
				Licenses: []string{apacheLicense},
				Metadata: map[string]string{"evidence": "manifest", "groupId": "com.fasterxml.jackson.core", "artifactId": "jackson-core"}}},
		},
		{
			Name: "file name only", Path: "opt/lib/commons-io-2.11.0.jar", Content: nameOnly, WantCount: 1,
			Want: []sbom.Package{mvn("commons-io", "2.11.0", map[string]string{"evidence": "filename", "artifactId": "commons-io"})},
		},
		{
			Name: "jenkins plugin", Path: "var/jenkins_home/plugins/git.jpi", Content: jenkins, WantCount: 1,
			Want: []sbom.Package{mvn("org.jenkins-ci.plugins:git", "4.11.0", map[string]string{"evidence": "manifest"})},
		},
		{
			Name: "no identity", Path: "app/app.jar", Content: nameOnly,
		},
		{
			Name: "nested zip bomb", Path: "app/bomb-1.0.jar", Content: bomb, WantCount: 1, WantWarning: true,
			Want: []sbom.Package{mvn("com.example:bomb", "1.0", pom)},
		},
		{
			Name: "nested too deep", Path: "app/level0.jar", Content: deep, WantCount: 5, WantWarning: true,
			Want: []sbom.Package{mvn("com.example:level0", "1.0", nil), mvn("com.example:level4", "1.0", nil)},
		},
		{Name: "upper case extension", Path: "OPT/LIB/LOG4J-CORE-2.14.1.JAR", Content: log4j, WantCount: 1},
		{Name: "truncated", Path: "opt/lib/log4j-core-2.14.1.jar", Content: log4j[:len(log4j)/2], WantErr: true},
		{Name: "garbage", Path: "opt/lib/junk.jar", Content: bytes.Repeat([]byte("not a zip file "), 8), WantErr: true},
		{Name: "karaoke midi", Path: "home/user/song.kar", Content: append([]byte("MThd\x00\x00\x00\x06\x00\x01\x00\x02\x00\x60"), make([]byte, 32)...), WantErr: true},
		{Name: "checksum file", Path: "opt/lib/log4j-core-2.14.1.jar.sha1", Content: []byte("0123456789abcdef0123456789abcdef01234567"), NoMatch: true},
		{Name: "zip", Path: "opt/lib/data.zip", Content: log4j, NoMatch: true},
		{Name: "empty", Path: "opt/lib/empty.jar", Content: []byte{}, NoMatch: true},
	}
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), testCases(t)) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), testCases(f)) }

func parse(t *testing.T, c *Cataloger, p string, data []byte) *sbom.Result {
	t.Helper()
	res, err := c.Parse(context.Background(), sbom.FileInfo{Path: p, Size: int64(len(data))}, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("Parse(%s): %v", p, err)
	}
	return res
}

func hasWarning(res *sbom.Result, parts ...string) bool {
	return slices.ContainsFunc(res.Warnings, func(w string) bool {
		for _, p := range parts {
			if !strings.Contains(w, p) {
				return false
			}
		}
		return true
	})
}

func names(res *sbom.Result) []string {
	var out []string
	for _, p := range res.Packages {
		out = append(out, p.Name+"@"+p.Version)
	}
	return out
}

func TestZipBombNamesEntry(t *testing.T) {
	bomb := archive(t, "", entry{name: "WEB-INF/lib/zeros-1.0.jar", body: zeros})
	res := parse(t, New(), "srv/app.war", bomb)
	if !hasWarning(res, "app.war!WEB-INF/lib/zeros-1.0.jar", "zip bomb") {
		t.Errorf("warnings %q do not name the bomb", res.Warnings)
	}
}

// TestUnderstatedSize feeds an entry whose header claims far less than it inflates to.
func TestUnderstatedSize(t *testing.T) {
	var deflated bytes.Buffer
	fw, err := flate.NewWriter(&deflated, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(zeros); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name: "lib/liar-1.0.jar", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE(zeros),
		CompressedSize64: uint64(deflated.Len()), UncompressedSize64: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(deflated.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	res := parse(t, New(), "app/liar.jar", buf.Bytes())
	if !hasWarning(res, "liar.jar!lib/liar-1.0.jar") {
		t.Errorf("warnings %q do not name the lying entry", res.Warnings)
	}
}

func TestCheckInflate(t *testing.T) {
	l := defaultLimits
	tests := []struct {
		name                     string
		compressed, uncompressed uint64
		ok                       bool
	}{
		{"typical jar in a war", 900_000, 1_000_000, true},
		{"small and very compressible", 1_000, 900_000, true},
		{"too large", 60 << 20, 65 << 20, false},
		{"ratio", 10 << 10, 8 << 20, false},
		{"nothing compressed", 0, 2 << 20, false},
		{"empty", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.checkInflate(tt.compressed, tt.uncompressed); (err == nil) != tt.ok {
				t.Errorf("checkInflate(%d, %d) = %v, want ok=%v", tt.compressed, tt.uncompressed, err, tt.ok)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	lib := func(name string) entry {
		return entry{name: "WEB-INF/lib/" + name + "-1.0.jar", body: archive(t, "", pomEntry("com.example", name, "1.0"))}
	}
	war := archive(t, "", pomEntry("com.example", "app", "1.0"), lib("a"), lib("b"), lib("c"))
	tests := []struct {
		name    string
		set     func(*limits)
		want    []string
		warning string
		wantErr bool
	}{
		{"defaults", func(*limits) {}, []string{"com.example:app@1.0", "com.example:a@1.0", "com.example:b@1.0", "com.example:c@1.0"}, "", false},
		{"archives", func(l *limits) { l.archives = 2 }, []string{"com.example:app@1.0", "com.example:a@1.0", "com.example:b@1.0"}, "more than 2 nested archives", false},
		{"inflated total", func(l *limits) { l.inflated = 300 }, []string{"com.example:app@1.0", "com.example:a@1.0"}, "inflated per file", false},
		{"entries", func(l *limits) { l.entries = 2 }, []string{"com.example:app@1.0", "com.example:a@1.0"}, "first 2 of 4 entries", false},
		// Archives whose pom.properties could not be read fall back to their file names.
		{"total entries", func(l *limits) { l.totalEntries = 5 }, []string{"com.example:app@1.0", "com.example:a@1.0", "b@1.0", "c@1.0"}, "more than 5 entries", false},
		{"metadata", func(l *limits) { l.meta = 100 }, []string{"com.example:app@1.0", "com.example:a@1.0", "b@1.0", "c@1.0"}, "larger than 100 bytes in total", false},
		{"warnings", func(l *limits) { l.archives, l.warnings = 0, 1 }, []string{"com.example:app@1.0"}, "2 more warnings", false},
		{"central directory total", func(l *limits) { l.totalDir = 1800 }, []string{"com.example:app@1.0", "com.example:a@1.0"}, "in total", false},
		{"central directory", func(l *limits) { l.dir = 100 }, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			tt.set(&c.lim)
			res, err := c.Parse(context.Background(), sbom.FileInfo{Path: "app.war", Size: int64(len(war))}, bytes.NewReader(war))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse succeeded with %v, want an error", names(res))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res); !slices.Equal(got, tt.want) {
				t.Errorf("packages = %v, want %v", got, tt.want)
			}
			if tt.warning != "" && !hasWarning(res, tt.warning) {
				t.Errorf("warnings %q lack %q", res.Warnings, tt.warning)
			}
			if tt.warning == "" && len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", res.Warnings)
			}
		})
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := log4jCore(t)
	if _, err := New().Parse(ctx, sbom.FileInfo{Path: "a.jar", Size: int64(len(data))}, bytes.NewReader(data)); err == nil {
		t.Error("Parse succeeded with a canceled context")
	}
}

func TestSplitFileName(t *testing.T) {
	tests := []struct{ stem, artifact, version string }{
		{"commons-lang3-3.12.0", "commons-lang3", "3.12.0"},
		{"log4j-core-2.14.1", "log4j-core", "2.14.1"},
		{"guava-31.1-jre", "guava", "31.1-jre"},
		{"bcprov-jdk15on-1.70", "bcprov-jdk15on", "1.70"},
		{"spring-core-6.0.0-M1", "spring-core", "6.0.0-M1"},
		{"javax.inject-1", "javax.inject", "1"},
		{"app", "app", ""},
		{"-1.0", "-1.0", ""},
		{"trailing-", "trailing-", ""},
	}
	for _, tt := range tests {
		if a, v := splitFileName(tt.stem); a != tt.artifact || v != tt.version {
			t.Errorf("splitFileName(%q) = %q, %q, want %q, %q", tt.stem, a, v, tt.artifact, tt.version)
		}
	}
}

func TestFromManifest(t *testing.T) {
	tests := []struct {
		name     string
		attrs    map[string]string
		file     string
		want     identity
		wantNone bool
	}{
		{
			name: "file name carries the manifest version",
			attrs: map[string]string{"implementation-title": "Netty/Buffer", "implementation-version": "4.1.94.Final",
				"bundle-symbolicname": "io.netty.buffer"},
			file: "netty-buffer-4.1.94.Final.jar",
			want: identity{artifact: "netty-buffer", version: "4.1.94.Final", evidence: "manifest"},
		},
		{
			name: "classifier after the version",
			attrs: map[string]string{"implementation-version": "4.1.94.Final", "implementation-vendor-id": "io.netty",
				"bundle-symbolicname": "io.netty.transport-native-epoll"},
			file: "netty-transport-native-epoll-4.1.94.Final-linux-x86_64.jar",
			want: identity{group: "io.netty", artifact: "netty-transport-native-epoll", version: "4.1.94.Final", evidence: "manifest"},
		},
		{
			name: "symbolic name after the vendor id",
			attrs: map[string]string{"bundle-version": "2.13.0", "implementation-vendor-id": "com.fasterxml.jackson.core",
				"bundle-symbolicname": "com.fasterxml.jackson.core.jackson-annotations;singleton:=true"},
			file: "annotations.jar",
			want: identity{group: "com.fasterxml.jackson.core", artifact: "jackson-annotations", version: "2.13.0", evidence: "manifest"},
		},
		{
			name:  "single-word title",
			attrs: map[string]string{"implementation-title": "demo", "implementation-version": "0.0.1-SNAPSHOT"},
			file:  "app.jar",
			want:  identity{artifact: "demo", version: "0.0.1-SNAPSHOT", evidence: "manifest"},
		},
		{
			name: "descriptive title: the file name is the artifact, and no group is guessed",
			attrs: map[string]string{"implementation-title": "Apache Commons Lang", "bundle-version": "3.12.0",
				"bundle-symbolicname": "org.apache.commons.lang3"},
			file: "commons-lang3.jar",
			want: identity{artifact: "commons-lang3", version: "3.12.0", evidence: "manifest"},
		},
		{
			name:  "specification version yields to the file name",
			attrs: map[string]string{"specification-version": "1.0"},
			file:  "foo-2.3.1.jar",
			want:  identity{artifact: "foo", version: "2.3.1", evidence: "filename"},
		},
		{
			name:  "specification version alone",
			attrs: map[string]string{"specification-version": "2.1", "implementation-vendor-id": "javax.ws.rs"},
			file:  "javax.ws.rs-api.jar",
			want:  identity{group: "javax.ws.rs", artifact: "javax.ws.rs-api", version: "2.1", evidence: "manifest"},
		},
		{
			name:  "unresolved placeholder",
			attrs: map[string]string{"implementation-version": "${project.version}"},
			file:  "thing-1.2.jar",
			want:  identity{artifact: "thing", version: "1.2", evidence: "filename"},
		},
		{name: "nothing", attrs: map[string]string{"manifest-version": "1.0"}, file: "app.jar", wantNone: true},
		{name: "no manifest", file: "lib.jar", wantNone: true},
		{name: "bad file name", file: "my lib-1.0.jar", wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := fromManifest(tt.attrs, tt.file)
			if ok == tt.wantNone {
				t.Fatalf("fromManifest found %+v, %v; want found=%v", got, ok, !tt.wantNone)
			}
			if !tt.wantNone && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("fromManifest = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseManifest(t *testing.T) {
	data := manifest(
		"Manifest-Version: 1.0",
		"Bundle-License: "+apacheLicense+","+strings.Repeat("https://example.com/licenses/another-license-with-a-long-name", 2),
		"implementation-VERSION: 1.2.3",
		"Empty:",
	)
	data = append(data, "Name: org/example/\r\nImplementation-Version: 9.9\r\n\r\n"...)
	got := parseManifest(data)
	want := map[string]string{
		"manifest-version":       "1.0",
		"bundle-license":         apacheLicense + "," + strings.Repeat("https://example.com/licenses/another-license-with-a-long-name", 2),
		"implementation-version": "1.2.3",
		"empty":                  "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseManifest = %q, want %q", got, want)
	}
	if got := parseManifest([]byte("Manifest-Version: 1.0\rBundle-Version: 1.0\r  .1\r")); got["bundle-version"] != "1.0 .1" {
		t.Errorf("CR line ends: %q", got)
	}
}

func TestParseProperties(t *testing.T) {
	data := "# comment\n! other comment\n  version = 1.0\ngroupId:org.example\nartifactId my\\\n    -artifact\nkey\\ with\\ space=v\\u00e9\nempty\nodd=\\\\\n"
	got := parseProperties([]byte(data))
	want := map[string]string{"version": "1.0", "groupId": "org.example", "artifactId": "my-artifact", "key with space": "vé", "empty": "", "odd": `\`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseProperties = %q, want %q", got, want)
	}
}

func TestBundleLicenses(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{apacheLicense, []string{apacheLicense}},
		{`Apache-2.0;link="https://www.apache.org/licenses/LICENSE-2.0.txt";description="Apache, 2.0"`, []string{"Apache-2.0"}},
		{"EPL-2.0, GPL-2.0-with-classpath-exception, EPL-2.0", []string{"EPL-2.0", "GPL-2.0-with-classpath-exception"}},
		{"Apache License, Version 2.0", []string{"Apache License, Version 2.0"}},
		{`"Eclipse Public License 1.0";link=x`, []string{"Eclipse Public License 1.0"}},
		{"", nil},
		{"bad\x00license", nil},
	}
	for _, tt := range tests {
		if got := bundleLicenses(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("bundleLicenses(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRealJar parses an archive written by the JDK's jar tool.
func TestRealJar(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the JDK")
	}
	jarTool, err := exec.LookPath("jar")
	if err != nil {
		t.Skip("no jar tool")
	}
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	pomDir := filepath.Join(content, "META-INF", "maven", "org.example", "real-thing")
	if err := os.MkdirAll(pomDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pomDir, "pom.properties"), pomProperties("org.example", "real-thing", "1.0.0"), 0o644); err != nil {
		t.Fatal(err)
	}
	mf := filepath.Join(dir, "manifest.txt")
	if err := os.WriteFile(mf, []byte("Bundle-License: "+apacheLicense+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "real-thing-1.0.0.jar")
	if b, err := exec.Command(jarTool, "cfm", out, mf, "-C", content, ".").CombinedOutput(); err != nil {
		t.Fatalf("jar: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	res := parse(t, New(), "opt/real-thing-1.0.0.jar", data)
	want := []sbom.Package{{Name: "org.example:real-thing", Version: "1.0.0", Type: sbom.TypeMaven, Licenses: []string{apacheLicense},
		Metadata: map[string]string{"evidence": "pom.properties", "groupId": "org.example", "artifactId": "real-thing"}}}
	if !reflect.DeepEqual(res.Packages, want) || len(res.Warnings) > 0 {
		t.Errorf("got %+v, warnings %q; want %+v", res.Packages, res.Warnings, want)
	}
}
