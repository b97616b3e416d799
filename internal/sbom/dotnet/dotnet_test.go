package dotnet

import (
	"testing"

	"github.com/moatsec/moat/internal/sbom"
	"github.com/moatsec/moat/internal/sbom/sbomtest"
)

const aspnetDeps = `{
  "runtimeTarget": {
    "name": ".NETCoreApp,Version=v8.0",
    "signature": ""
  },
  "compilationOptions": {},
  "targets": {
    ".NETCoreApp,Version=v8.0": {
      "WebApi/1.0.0": {
        "dependencies": {
          "Microsoft.EntityFrameworkCore.SqlServer": "8.0.1",
          "Newtonsoft.Json": "13.0.3",
          "Swashbuckle.AspNetCore": "6.5.0",
          "WebApi.Data": "1.0.0"
        },
        "runtime": {
          "WebApi.dll": {}
        }
      },
      "Newtonsoft.Json/13.0.3": {
        "runtime": {
          "lib/net6.0/Newtonsoft.Json.dll": {
            "assemblyVersion": "13.0.0.0",
            "fileVersion": "13.0.3.27908"
          }
        }
      },
      "Swashbuckle.AspNetCore/6.5.0": {
        "dependencies": {
          "Microsoft.Extensions.ApiDescription.Server": "6.0.5",
          "Swashbuckle.AspNetCore.Swagger": "6.5.0"
        }
      },
      "Microsoft.Extensions.ApiDescription.Server/6.0.5": {},
      "WebApi.Data/1.0.0": {
        "runtime": {
          "WebApi.Data.dll": {}
        }
      },
      "System.Web/4.0.0.0": {
        "runtime": {
          "System.Web.dll": {}
        }
      }
    }
  },
  "libraries": {
    "WebApi/1.0.0": {
      "type": "project",
      "serviceable": false,
      "sha512": ""
    },
    "Newtonsoft.Json/13.0.3": {
      "type": "package",
      "serviceable": true,
      "sha512": "sha512-HrC5BXdl00IP9zeV+0Z848QWPAoCr9P3bDEZguI+gkLcBKAOxix/tLEAAHC+UvDNPv4a2d18lOReHMOagPa+zQ==",
      "path": "newtonsoft.json/13.0.3",
      "hashPath": "newtonsoft.json.13.0.3.nupkg.sha512"
    },
    "Swashbuckle.AspNetCore/6.5.0": {
      "type": "package",
      "serviceable": true,
      "sha512": "sha512-FK05XokgjgwlCI6wCT+D4/abtQkL1X1/B9Oas6uIwHFmYrIO9WUD5aLC9IzMs9GnHfUXOtXZ2S43gN1mhs5+aA==",
      "path": "swashbuckle.aspnetcore/6.5.0",
      "hashPath": "swashbuckle.aspnetcore.6.5.0.nupkg.sha512"
    },
    "Microsoft.Extensions.ApiDescription.Server/6.0.5": {
      "type": "package",
      "serviceable": true,
      "sha512": "sha512-Ckb5EDBUNJdFWyajfXzUIMRkhf52fHZOQuuZg/oiu8y7zDCVwD0iHhew6MnThjHmevanpxL3f5ci2TtHQEN6bw==",
      "path": "microsoft.extensions.apidescription.server/6.0.5",
      "hashPath": "microsoft.extensions.apidescription.server.6.0.5.nupkg.sha512"
    },
    "WebApi.Data/1.0.0": {
      "type": "project",
      "serviceable": false,
      "sha512": ""
    },
    "System.Web/4.0.0.0": {
      "type": "reference",
      "serviceable": false,
      "sha512": ""
    }
  }
}`

// selfContained has the runtime pack that a self-contained publish adds.
const selfContained = `{
  "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0/linux-x64", "signature": ""},
  "targets": {".NETCoreApp,Version=v8.0/linux-x64": {}},
  "libraries": {
    "App/1.0.0": {"type": "project", "serviceable": false, "sha512": ""},
    "Microsoft.NETCore.App.Runtime.linux-x64/8.0.1": {"type": "runtimepack", "serviceable": false, "sha512": ""}
  }
}`

var cases = []sbomtest.Case{
	{
		Name: "aspnet app", Path: "app/WebApi.deps.json", Content: []byte(aspnetDeps), WantCount: 3,
		Want: []sbom.Package{
			{Name: "Newtonsoft.Json", Version: "13.0.3", Type: sbom.TypeNuGet, Metadata: map[string]string{
				"sha512": "sha512-HrC5BXdl00IP9zeV+0Z848QWPAoCr9P3bDEZguI+gkLcBKAOxix/tLEAAHC+UvDNPv4a2d18lOReHMOagPa+zQ=="}},
			{Name: "Swashbuckle.AspNetCore", Version: "6.5.0", Type: sbom.TypeNuGet},
			{Name: "Microsoft.Extensions.ApiDescription.Server", Version: "6.0.5", Type: sbom.TypeNuGet},
		},
	},
	{
		Name: "self-contained", Path: "app/App.deps.json", Content: []byte(selfContained), WantCount: 1,
		Want: []sbom.Package{{Name: "Microsoft.NETCore.App.Runtime.linux-x64", Version: "8.0.1", Type: sbom.TypeNuGet,
			Metadata: map[string]string{"type": "runtimepack"}}},
	},
	{
		Name: "partly broken", Path: "app/x.deps.json",
		Content: []byte(`{"libraries":{"Good/1.0.0":{"type":"package"},"NoVersion":{"type":"package"},` +
			`"Bad/1.0.0":{"type":7},"Odd/1.0/2":{"type":"package"},"Str/1.0":"x"}}`),
		WantCount: 1, WantWarning: true, Want: []sbom.Package{{Name: "Good", Version: "1.0.0", Type: sbom.TypeNuGet}},
	},
	{Name: "only projects", Path: "app/x.deps.json", Content: []byte(`{"libraries":{"App/1.0.0":{"type":"project"}}}`)},
	{Name: "no libraries", Path: "app/x.deps.json", Content: []byte(`{"runtimeTarget":{"name":".NETCoreApp,Version=v8.0"}}`), WantErr: true},
	{Name: "not json", Path: "app/x.deps.json", Content: []byte("MZ\x90\x00"), WantErr: true},
	{Name: "with BOM", Path: "app/x.deps.json", Content: []byte("\xef\xbb\xbf" + `{"libraries":{"A/1.0.0":{"type":"package"}}}`), WantCount: 1},
	{Name: "runtimeconfig", Path: "app/WebApi.runtimeconfig.json", NoMatch: true},
	{Name: "bare suffix", Path: "app/.deps.json", NoMatch: true},
}

func TestConformance(t *testing.T) { sbomtest.Run(t, New(), cases) }

func FuzzParse(f *testing.F) { sbomtest.Fuzz(f, New(), cases) }
