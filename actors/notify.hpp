/// The chat notifications: placeholder, filled in by issue 5's notifier work.
#pragma once
