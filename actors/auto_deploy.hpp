/// Auto-deployment on green commits: placeholder, filled in by issue 5.
#pragma once
